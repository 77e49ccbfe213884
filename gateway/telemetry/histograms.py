"""Histograms aggregated in the process, read by the SDK's metric readers.

The SDK's synchronous instruments cost about 9 µs per reader for every recorded value
(a measurement object, attribute validation and hashing, exemplar sampling); the gateway
records four or five values per request into two readers. Here a recorder holds the series
of its attribute set and a value is only queued on it; a series' queue is folded into its
counts a batch at a time, the per-value work done by the interpreter's built-ins (a sort, a
sum and a bisection per bucket bound). The readers (Prometheus, periodic OTLP, the tests'
in-memory one) still collect and export as they would from a `MeterProvider`: each is bound
to `MetricsHub.collect`, which builds the same `MetricsData`.
"""

from __future__ import annotations

import sys
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat, starmap
from math import isfinite
from operator import itemgetter
from time import time_ns
from typing import Any

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway.telemetry.spans import Span

LabelKey = tuple[tuple[str, Any], ...]
"""A series' attributes as (name, value) pairs: hashable, and built once per label set."""

_INF = float("inf")
_MAX = sys.float_info.max
FOLD_AT = 64
"""Values a series queues before the recording thread folds them in itself. Each holds its
span (a possible exemplar) until then, so a series keeps at most this many spans alive; a
reader's collection folds every series."""


Sample = tuple[float, Span]
"""An exemplar: a value and the (ended) span it was recorded for."""


class _Counts:
    """One attribute set's counts; `windows` holds a [min, max] per delta-temporality reader,
    `samples` the latest exemplar per bucket."""

    __slots__ = ("buckets", "count", "max", "min", "samples", "start_ns", "sum", "windows")

    def __init__(self, size: int, windows: int) -> None:
        self.buckets = [0] * size
        self.samples: list[Sample | None] = [None] * size
        self.count = 0
        self.sum = 0.0
        self.min = _INF
        self.max = -_INF
        self.start_ns = time_ns()
        self.windows = [[_INF, -_INF] for _ in range(windows)]


class Series:
    """One attribute set of a histogram, as a recorder holds it (`Histogram.series`).

    `add` only queues a value: the queue is folded into the counts when `FOLD_AT` values
    wait or a reader collects, under the histogram's lock, with the interpreter's built-ins
    doing the per-value work (a sort, a sum and a bisection per bucket bound).
    """

    __slots__ = ("_histogram", "counts", "pending")

    def __init__(self, histogram: Histogram, counts: _Counts) -> None:
        self._histogram = histogram
        self.counts = counts
        # A deque: appended to and emptied on any thread without a lock. Recorders may queue
        # on it directly, as `add` does, if they see that it is folded often (`fold`).
        self.pending: deque[tuple[float, Span | None]] = deque()

    def add(self, value: float, span: Span | None = None) -> None:
        """Count `value`; negative, infinite and NaN values are ignored, as the SDK ignores
        them. A sampled, ended `span` may become its bucket's exemplar (the latest recorded
        in each bucket, as with the SDK's default, trace-based, exemplar filter)."""
        pending = self.pending
        pending.append((value, span))
        if len(pending) >= FOLD_AT:
            with self._histogram._lock:
                self._fold()

    def fold(self) -> None:
        """Add the queued values to the counts now."""
        if self.pending:
            with self._histogram._lock:
                self._fold()

    def _fold(self) -> None:
        """Add the queued values to the counts; the caller holds the histogram's lock."""
        pending = self.pending
        # Values queued meanwhile wait for the next fold.
        batch = list(starmap(pending.popleft, repeat((), len(pending))))
        try:
            values = sorted(filter(isfinite, map(_VALUE, batch)))
        except OverflowError:  # an int too large for a double: ignored as infinities are
            values = sorted(filter(_finite, map(_VALUE, batch)))
        negative = bisect_left(values, 0)
        if negative:
            del values[:negative]
        if not values:
            return
        counts = self.counts
        boundaries = self._histogram.boundaries
        low, high = values[0], values[-1]
        count = len(values)
        counts.count += count
        counts.sum += sum(values)
        counts.min = min(counts.min, low)
        counts.max = max(counts.max, high)
        for window in counts.windows:
            window[0] = min(window[0], low)
            window[1] = max(window[1], high)
        # Bucket i counts the values in (boundaries[i - 1], boundaries[i]].
        buckets = counts.buckets
        last = bisect_left(boundaries, high)
        reached = {last}
        done = 0
        for index in range(bisect_left(boundaries, low), last):
            upto = bisect_right(values, boundaries[index], done)
            if upto > done:
                buckets[index] += upto - done
                reached.add(index)
                done = upto
        buckets[last] += count - done
        # Exemplars: the latest sampled value of each bucket the batch reached.
        samples = counts.samples
        for value, span in reversed(batch):
            if span is None or not span.sampled or not 0 <= value <= _MAX:
                continue
            index = bisect_left(boundaries, value)
            if index in reached:
                samples[index] = (value, span)
                reached.discard(index)
                if not reached:
                    break


_VALUE = itemgetter(0)


def _finite(value: float) -> bool:
    try:
        return isfinite(value)
    except OverflowError:
        return False


class Histogram:
    """An explicit-bucket histogram: a bucket counts values up to and including its bound.

    Recorders hold a `Series` per attribute set (`series`) and add values to it; `record`
    looks the series up each time.
    """

    def __init__(self, name: str, *, unit: str, description: str,
                 boundaries: Sequence[float], aliases: Sequence[tuple[str, str]] = ()) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        # Further (name, description) pairs under which the same series are exported: a
        # metric the conventions define with the same values costs no second recording.
        self.aliases = tuple(aliases)
        self.boundaries = tuple(boundaries)
        self._series: dict[LabelKey, Series] = {}
        self._windows = 0
        self._lock = threading.Lock()

    def series(self, labels: LabelKey) -> Series:
        """The series of `labels` (made once, then the same object)."""
        found = self._series.get(labels)
        if found is None:
            with self._lock:
                found = self._series.get(labels)
                if found is None:
                    counts = _Counts(len(self.boundaries) + 1, self._windows)
                    found = self._series[labels] = Series(self, counts)
        return found

    def record(self, value: float, labels: LabelKey, span: Span | None = None) -> None:
        """Add `value` to the series of `labels` (see `Series.add`)."""
        self.series(labels).add(value, span)

    def _fold(self) -> None:
        """Fold every series' queue; the caller holds the lock."""
        for series in self._series.values():
            if series.pending:
                series._fold()

    def add_window(self) -> None:
        """Track min and max per collection for one more delta reader."""
        with self._lock:
            self._fold()
            for series in self._series.values():
                series.counts.windows.append([_INF, -_INF])
            self._windows += 1

    def snapshot(self, *, new_window: int | None = None) -> list[tuple[LabelKey, _Counts]]:
        """A consistent copy of every series; then, if given, delta reader `new_window`'s
        min and max start afresh."""
        with self._lock:
            self._fold()
            copies = []
            for labels, series in self._series.items():
                counts = series.counts
                if not counts.count:  # made by a recorder, never given a value: no point yet
                    continue
                copy = _Counts(0, 0)
                copy.buckets = list(counts.buckets)
                copy.samples = list(counts.samples)
                copy.count, copy.sum = counts.count, counts.sum
                copy.min, copy.max, copy.start_ns = counts.min, counts.max, counts.start_ns
                copy.windows = [list(w) for w in counts.windows]
                copies.append((labels, copy))
                if new_window is not None:
                    counts.windows[new_window] = [_INF, -_INF]
            return copies


class _Reader:
    """What a reader saw at its previous collection: its exemplars are those recorded since,
    and a delta reader's points the changes since (`window` indexes its min and max)."""

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.collected_ns = 0
        self.previous: dict[tuple[str, LabelKey], _Counts] = {}


class MetricsHub:
    """Serves the histograms to metric readers, in place of a `MeterProvider`.

    Readers preferring delta temporality for histograms get the change since their
    previous collection; the others get cumulative values. Every reader gets explicit
    buckets (a preferred exponential aggregation is not honoured).
    """

    def __init__(self, histograms: Sequence[Histogram], readers: Sequence[MetricReader], *,
                 resource: Resource, scope: InstrumentationScope,
                 before_collect: Callable[[], None] | None = None) -> None:
        self._histograms = tuple(histograms)
        self._resource = resource
        self._scope = scope
        self.readers = tuple(readers)
        self._states: dict[int, _Reader] = {}
        self._lock = threading.Lock()
        # Called before each collection, on the collecting thread: queues values recorded but
        # not yet queued (`Telemetry.record_ended`).
        self._before_collect = before_collect
        windows = 0
        for reader in self.readers:
            window = None
            if _temporality(reader) is AggregationTemporality.DELTA:
                window, windows = windows, windows + 1  # the same index in every histogram
                for histogram in self._histograms:
                    histogram.add_window()
            self._states[id(reader)] = _Reader(window)
            # The one hook through which a MeterProvider feeds a reader; collection, export
            # and the readers' own threads are left to them. (The SDK annotates the callback
            # with a temporality argument, but calls it with a timeout.)
            reader._set_collect_callback(self.collect)  # type: ignore[arg-type]

    def collect(self, reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        """The current metrics for `reader`, in its temporality."""
        if self._before_collect is not None:
            self._before_collect()
        now = time_ns()
        state = self._states.get(id(reader)) or _Reader(None)
        since = state.collected_ns
        metrics = []
        with self._lock:
            for histogram in self._histograms:
                series = histogram.snapshot(new_window=state.window)
                if state.window is not None:
                    points = self._delta_points(histogram, series, state, now)
                    temporality = AggregationTemporality.DELTA
                else:
                    points = [_point(labels, s, s.start_ns, now, histogram.boundaries,
                                     s.min, s.max, since) for labels, s in series]
                    temporality = AggregationTemporality.CUMULATIVE
                if points:
                    data = HistogramData(data_points=points, aggregation_temporality=temporality)
                    metrics += [Metric(name=name, description=description, unit=histogram.unit,
                                       data=data)
                                for name, description in ((histogram.name, histogram.description),
                                                          *histogram.aliases)]
            state.collected_ns = now
        if not metrics:
            return None
        return MetricsData(resource_metrics=[ResourceMetrics(
            resource=self._resource,
            scope_metrics=[ScopeMetrics(scope=self._scope, metrics=metrics,
                                        schema_url=self._scope.schema_url or "")],
            schema_url=self._resource.schema_url)])

    def _delta_points(self, histogram: Histogram, series: list[tuple[LabelKey, _Counts]],
                      state: _Reader, now: int) -> list[HistogramDataPoint]:
        assert state.window is not None
        points = []
        for labels, current in series:
            key = (histogram.name, labels)
            before = state.previous.get(key)
            state.previous[key] = current
            count = current.count - (before.count if before else 0)
            if count <= 0:
                continue
            start = state.collected_ns if before else current.start_ns
            change = _Counts(0, 0)
            change.count = count
            change.sum = current.sum - (before.sum if before else 0.0)
            change.buckets = [c - (before.buckets[i] if before else 0)
                              for i, c in enumerate(current.buckets)]
            change.samples = current.samples
            low, high = current.windows[state.window]
            points.append(_point(labels, change, start, now, histogram.boundaries, low, high,
                                 state.collected_ns))
        return points

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Have every reader collect (and export, for the periodic ones) now."""
        return all([reader.force_flush(timeout_millis) for reader in self.readers])

    def shutdown(self) -> None:
        """Shut every reader down (the periodic ones export a last time)."""
        for reader in self.readers:
            reader.shutdown()


def _point(labels: LabelKey, series: _Counts, start: int, now: int,
           boundaries: tuple[float, ...], low: float, high: float,
           since: int) -> HistogramDataPoint:
    exemplars = [Exemplar(None, value, span.end_ns, int.from_bytes(span.span_id, "big"),
                          int.from_bytes(span.trace_id, "big"))
                 for value, span in filter(None, series.samples) if span.end_ns >= since]
    return HistogramDataPoint(
        attributes=dict(labels), start_time_unix_nano=start, time_unix_nano=now,
        count=series.count, sum=series.sum, bucket_counts=series.buckets,
        explicit_bounds=boundaries, min=low, max=high, exemplars=exemplars)


def _temporality(reader: MetricReader) -> AggregationTemporality:
    preferred = reader._instrument_class_temporality  # what the SDK's own storage reads
    for kind, temporality in preferred.items():
        if issubclass(kind, SdkHistogram):
            return temporality
    return AggregationTemporality.CUMULATIVE
