"""generated/models.py: pydantic v2 models of `components/schemas`, by datamodel-code-generator."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

LINE_LENGTH = 100


class ModelGenerationError(Exception):
    """datamodel-code-generator could not turn the schemas into models."""


def render_models(doc: Mapping[str, Any], notice: str) -> str:
    """The source of generated/models.py; the spec's vendor extensions are ignored by the tool."""
    # Imported here: the tool takes seconds to import, and a bad spec should fail fast without it.
    from datamodel_code_generator import GenerateConfig, InputFileType, generate
    from datamodel_code_generator.enums import DataModelType
    from datamodel_code_generator.format import Formatter, PythonVersion

    config = GenerateConfig(
        input_file_type=InputFileType.OpenAPI,
        output_model_type=DataModelType.PydanticV2BaseModel,
        target_python_version=PythonVersion.PY_311,
        disable_timestamp=True,
        custom_file_header=f'# {notice}\n"""Pydantic models of the spec\'s components/schemas."""',
        field_constraints=True,
        use_annotated=True,
        use_double_quotes=True,
        use_standard_collections=True,
        use_union_operator=True,
        use_schema_description=True,
        use_single_line_docstring=True,
        wrap_string_literal=True,
        formatters=[Formatter.BUILTIN],
        builtin_format_line_length=LINE_LENGTH,
    )
    try:
        # The tool's own deprecation notices are not ours to act on; keep them off stderr.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = generate(dict(doc), config=config)
    except Exception as exc:  # any failure of the tool is reported, not raised
        raise ModelGenerationError(f"datamodel-code-generator failed: {exc}") from exc
    if not isinstance(source, str):
        raise ModelGenerationError("datamodel-code-generator returned no single module")
    return source.rstrip("\n") + "\n"
