"""A report whose example of a technique is a trace: it says where the censor is, and, being
public, hides the routers that could point at the agent (collector.traces)."""

from __future__ import annotations

from collector.evidence.query import parse_query
from collector.reports import gather, report_html
from collector.storage import Storage
from collector.thresholds import Thresholds
from tests.collector.storage.records import AGENT, ingest_records
from tests.collector.traces import CPE, ISP, trace_measurement, trace_observation

T0 = 1_700_000_000_000


def test_a_trace_example_locates_the_censor_and_names_no_router_of_the_agents(
    storage: Storage,
) -> None:
    # The censor right after the ISP's router, in shared address space: hidden.
    trace = trace_measurement(trace_observation((CPE, ISP)), started_ms=T0)
    storage.ingest(AGENT, ingest_records([trace]), 64500, "PK", T0 + 1000)
    query = parse_query("blocked.example", [], T0 - 3_600_000, T0 + 3_600_000)
    [example] = gather(storage, query, Thresholds()).examples
    assert example.verdict == "tls.reset"
    assert (
        "the censor reacted at hop 3 with a reset, after a router of the agent's own or a "
        "private network (not shown);" in example.explanation
    )
    page = report_html(storage, query, Thresholds()).decode()
    assert "the censor reacted at hop 3" in page
    assert CPE not in page
    assert ISP not in page
