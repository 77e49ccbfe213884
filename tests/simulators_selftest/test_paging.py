"""Model lists really page: small page sizes split the contract list, cursors walk it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulators import ProviderSimulator
from tests.simulators_selftest.loopback import client


def walk_anthropic(sim: ProviderSimulator, limit: int) -> list[list[str]]:
    """All pages, following last_id while has_more."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": limit}
    with client(sim) as http:
        for _ in range(10):
            body = http.get("/v1/models", params=params).json()
            pages.append([m["id"] for m in body["data"]])
            assert (body["first_id"], body["last_id"]) == (pages[-1][0], pages[-1][-1])
            if not body["has_more"]:
                return pages
            params = {"limit": limit, "after_id": body["last_id"]}
    raise AssertionError("paging did not end")


def walk_cursor(sim: ProviderSimulator, path: str, size_param: str, size: int,
                token_param: str, next_field: str, items: str, key: str) -> list[list[str]]:
    """All pages of a token-cursor API."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {size_param: size}
    with client(sim) as http:
        for _ in range(10):
            body = http.get(path, params=params).json()
            pages.append([m[key] for m in body[items]])
            if next_field not in body:
                return pages
            params = {size_param: size, token_param: body[next_field]}
    raise AssertionError("paging did not end")


def all_ids(sim: ProviderSimulator, pages: tuple[str, ...], items: str, key: str) -> list[str]:
    """Every id across the contract's own pages."""
    return [m[key] for name in pages for m in sim.contract.response(name).body[items]]


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_anthropic_pages(anthropic_sim: ProviderSimulator, limit: int) -> None:
    """after_id paging returns every model once, in at least two pages."""
    pages = walk_anthropic(anthropic_sim, limit)
    expected = all_ids(anthropic_sim, ("list_models_page1", "list_models_page2"), "data", "id")
    assert [i for p in pages for i in p] == expected
    assert len(pages) >= 2
    assert all(len(p) <= limit for p in pages)


def test_anthropic_before_id(anthropic_sim: ProviderSimulator) -> None:
    """before_id pages backwards."""
    ids = all_ids(anthropic_sim, ("list_models_page1", "list_models_page2"), "data", "id")
    with client(anthropic_sim) as http:
        body = http.get("/v1/models", params={"limit": 2, "before_id": ids[-1]}).json()
    assert [m["id"] for m in body["data"]] == ids[-3:-1]
    assert body["has_more"] is True


def test_anthropic_uncapped(anthropic_sim: ProviderSimulator) -> None:
    """With the cap lifted the requested limit is honoured."""
    anthropic_sim.page_size_cap = None
    assert len(walk_anthropic(anthropic_sim, 1000)) == 1


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_google_pages(google_sim: ProviderSimulator, size: int) -> None:
    """pageToken paging returns every model once; the last page has no nextPageToken."""
    pages = walk_cursor(google_sim, "/v1beta/models", "pageSize", size, "pageToken",
                        "nextPageToken", "models", "name")
    expected = all_ids(google_sim, ("list_models_page1", "list_models_last_page"),
                       "models", "name")
    assert [i for p in pages for i in p] == expected
    assert len(pages) >= 2


def test_google_bad_token(google_sim: ProviderSimulator) -> None:
    """An unknown pageToken is 400 INVALID_ARGUMENT."""
    with client(google_sim) as http:
        response = http.get("/v1beta/models", params={"pageToken": "!!"})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_cohere_pages(cohere_sim: ProviderSimulator, size: int) -> None:
    """page_token paging with the endpoint filter returns every chat model once."""
    pages = walk_cursor(cohere_sim, "/v1/models?endpoint=chat", "page_size", size,
                        "page_token", "next_page_token", "models", "name")
    expected = all_ids(cohere_sim, ("list_models",), "models", "name")
    assert [i for p in pages for i in p] == expected
    assert len(pages) >= 2


def test_cohere_endpoint_filter(cohere_sim: ProviderSimulator) -> None:
    """Models without the requested endpoint are left out."""
    with client(cohere_sim) as http:
        body = http.get("/v1/models", params={"endpoint": "embed"}).json()
    assert body["models"] == []


@pytest.mark.parametrize("per_page", [1, 2])
def test_cloudflare_pages(cloudflare_sim: ProviderSimulator, per_page: int) -> None:
    """page/per_page paging reports result_info and covers the list."""
    expected = all_ids(cloudflare_sim, ("models_search",), "result", "name")
    seen: list[str] = []
    with client(cloudflare_sim) as http:
        for number in range(1, 10):
            body = http.get("/ai/models/search", params={
                "task": "Text Generation", "per_page": per_page, "page": number}).json()
            info = body["result_info"]
            assert (info["page"], info["per_page"], info["total_count"]) == (
                number, per_page, len(expected))
            seen += [m["name"] for m in body["result"]]
            if number * per_page >= info["total_count"]:
                break
    assert seen == expected


def test_cloudflare_cap_splits_large_pages(cloudflare_sim: ProviderSimulator) -> None:
    """A page-size cap clamps per_page and says so in result_info."""
    cloudflare_sim.page_size_cap = 1
    with client(cloudflare_sim) as http:
        body = http.get("/ai/models/search", params={"per_page": 100}).json()
    assert body["result_info"]["per_page"] == 1
    assert len(body["result"]) == 1
