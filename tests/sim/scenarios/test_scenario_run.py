"""Running a scenario: what the default scenario must show, determinism by seed, and saved results.

The default scenario is shortened to 27 simulated seconds here: long enough for its Southeast Asia
partition (10 s to 15 s) and its East US crash and restart (20 s to 26 s), short enough to run in
well under a second.
"""

import pandas as pd
import pytest

from novacron.sim.scenarios import (
    LINK_CLASSES,
    ScenarioResult,
    Section,
    extra_component,
    load_scenario,
    run_scenario,
)

DURATION = 27.0
PARTITION = (10.0, 15.0)  # Southeast Asia cut off from the other regions
CRASH = ("eastus-dc1-n2", 20.0, 26.0)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("default").with_overrides(duration=DURATION)


@pytest.fixture(scope="module")
def result(scenario) -> ScenarioResult:
    return run_scenario(scenario)


@pytest.fixture(scope="module")
def saved(result, tmp_path_factory):
    """The result saved once (rendering the plots is the slow part): the folder and the paths."""
    out = tmp_path_factory.mktemp("results") / "default-seed1"
    return out, result.save(out)


def by_class(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("link_class")


# --- what the default scenario shows -------------------------------------------------------------


def test_latency_and_goodput_cover_all_three_link_classes(result):
    latency, goodput = by_class(result.table("latency")), by_class(result.table("goodput"))
    assert list(latency.index) == list(LINK_CLASSES)
    assert list(goodput.index) == list(LINK_CLASSES)
    assert (latency["count"] > 100).all()
    assert (goodput["completed"] > 0).all() and (goodput["total_bytes"] > 0).all()
    assert (goodput["mean_gbps"] > 0).all()


def test_latency_grows_with_distance(result):
    latency = by_class(result.table("latency"))
    for column in ("mean_ms", "p50_ms"):
        site, region, inter = (latency.loc[c, column] for c in LINK_CLASSES)
        assert inter > region > site, column
    assert latency.loc["intra-site", "p50_ms"] < 1.0  # a datacenter fabric
    assert latency.loc["inter-region", "p50_ms"] > 20.0  # continents apart
    assert (latency["p50_ms"] <= latency["p95_ms"]).all() and (latency["p95_ms"] <= latency["p99_ms"]).all()


def test_each_workload_starts_about_one_transfer_per_every_seconds_cluster_wide(scenario, result):
    started = result.table("goodput_by_workload").set_index("workload")["started"]
    for work in scenario.workload:
        expected = DURATION / work.every
        assert 0.5 * expected < started[work.name] < 1.6 * expected, (work.name, started[work.name], expected)


def test_goodput_is_highest_inside_a_datacenter_and_lowest_across_regions(result):
    goodput = by_class(result.table("goodput"))
    assert goodput.loc["intra-site", "mean_gbps"] > goodput.loc["inter-region", "mean_gbps"]
    assert goodput.loc["intra-site", "mean_gbps"] <= 25.0 + 1e-6  # never faster than the NIC


def test_heartbeat_rtts_are_reported_per_link_class_and_about_twice_the_one_way_latency(result):
    heartbeat, latency = by_class(result.table("heartbeat")), by_class(result.table("latency"))
    assert list(heartbeat.index) == list(LINK_CLASSES)
    ratio = heartbeat["p50_ms"] / latency["p50_ms"]
    assert ((ratio > 1.5) & (ratio < 2.5)).all(), ratio


def test_the_scheduled_faults_are_applied_and_healed_on_time(result):
    log = result.table("faults")
    events = set(zip(log["time_s"], log["event"], log["fault"], strict=True))
    assert {(10.0, "apply", "faults[0]"), (15.0, "heal", "faults[0]")} <= events
    assert {(20.0, "apply", "faults[1]"), (26.0, "heal", "faults[1]")} <= events
    assert "region:Southeast Asia" in " ".join(log["what"])


def test_the_partition_silences_heartbeats_across_the_cut_and_only_during_it(result):
    samples = result.table("heartbeat_samples")
    asia = samples["node"].str.startswith("southeastasia") != samples["peer"].str.startswith("southeastasia")
    sent = samples["time_s"] - samples["rtt_ms"] / 1e3
    during = (sent >= PARTITION[0]) & (sent < PARTITION[1])
    assert not (asia & during).any(), "a heartbeat crossed the partition"
    assert (asia & (sent < PARTITION[0])).any() and (asia & (sent >= PARTITION[1])).any()


def test_the_crashed_node_answers_no_heartbeats_until_it_restarts(result):
    node, down, up = CRASH
    samples = result.table("heartbeat_samples")
    from_it = samples[samples["peer"] == node]
    assert not from_it["time_s"].between(down + 0.3, up).any()  # 0.3 s: acks already in flight
    assert (from_it["time_s"] > up).any(), "the restarted node runs its heartbeat app again"


def test_the_faults_cause_drops(scenario, result):
    calm = run_scenario(scenario.model_copy(update={"faults": []}))
    counters = dict(zip(result.table("failures")["counter"], result.table("failures")["value"], strict=True))
    calm_counters = dict(zip(calm.table("failures")["counter"], calm.table("failures")["value"], strict=True))
    assert counters["dropped"] > calm_counters["dropped"] + 1000  # the partition drops every heartbeat
    assert counters["dropped_dead"] > 0 == calm_counters["dropped_dead"]  # sent to the crashed node


# --- determinism ---------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_trace_and_identical_tables(scenario, result):
    again = run_scenario(scenario)
    assert again.trace_hash == result.trace_hash
    assert again.trace_events == result.trace_events
    assert [s.name for s in again.sections] == [s.name for s in result.sections]
    for section in result.sections:
        pd.testing.assert_frame_equal(again.table(section.name), section.table, check_exact=True)


def test_a_different_seed_gives_a_different_trace(scenario):
    short = scenario.with_overrides(duration=5.0)
    assert run_scenario(short).trace_hash != run_scenario(short.with_overrides(seed=2)).trace_hash


# --- results and the report ----------------------------------------------------------------------


def test_the_summary_shows_every_summary_table_and_the_trace_hash(result):
    text = result.summary()
    assert result.trace_hash in text
    for title in ("latency", "goodput", "Heartbeat", "Fault log", "Network counters"):
        assert title in text
    assert "inter-region" in text and "faults[1]" in text
    assert "heartbeat_samples" not in text  # raw samples are saved, not printed


def test_save_writes_csv_parquet_and_plots_that_load_back(result, saved):
    out, written = saved
    names = {p.name for p in written}
    assert all(p.exists() and p.stat().st_size > 0 for p in written)
    for section in result.sections:
        assert {f"{section.name}.csv", f"{section.name}.parquet"} <= names
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{section.name}.parquet"), section.table)
    assert {
        "latency.png",
        "goodput.png",
        "heartbeat.png",
        "summary.txt",
        "scenario.yaml",
        "run.json",
    } <= names
    assert (out / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_the_saved_scenario_replays_the_same_trace(result, saved):
    out, _ = saved
    assert run_scenario(load_scenario(out / "scenario.yaml")).trace_hash == result.trace_hash


def test_a_registered_component_adds_its_own_app_and_section(scenario):
    class Census:
        """A later component's shape: an app on every node, a table and a plot in the report."""

        name = "census"

        def install(self, run):
            run.data["census"] = started = []
            run.add_app("census", lambda rt: started.append((run.sim.now, rt.node_id)))

        def sections(self, run):
            table = pd.DataFrame(run.data["census"], columns=["time_s", "node"])
            return [Section("census", "Node (re)starts", table)]

    with extra_component(Census()):
        result = run_scenario(scenario.with_overrides(duration=DURATION))
    starts = result.table("census")
    assert len(starts) == 24 + 1  # every node at t=0, the crashed one again on restart
    assert starts.iloc[-1].tolist() == [CRASH[2], CRASH[0]]
    assert result.sections[-1].name == "census" and "Node (re)starts" in result.summary()
    assert "census" not in run_scenario(scenario.with_overrides(duration=1.0))


def test_the_dwcp_data_plane_reports_mode_streams_codec_and_ratio_per_link_class(result):
    table = result.table("dwcp").set_index("link_class")
    assert set(table.index) == set(LINK_CLASSES)
    assert table.loc["intra-site", "mode"] == "datacenter"
    assert table.loc["inter-region", "mode"] == "internet"
    # Datacenter links get many streams; the WAN few, with BBR and compression that pays there.
    assert table.loc["intra-site", "streams_mean"] > table.loc["inter-region", "streams_mean"]
    assert table.loc["inter-region", "congestion"] == "bbr"
    assert table.loc["inter-region", "codec"].startswith("zstd")
    assert table.loc["inter-region", "ratio_mean"] < 0.7  # 30% zero + 30% text pages compress
    assert (table["transfers"] > 0).all()


def test_detected_modes_settle_by_link_class(result):
    modes = result.table("dwcp_modes")
    by_class = modes.groupby("link_class")["mode"].agg(set).to_dict()
    assert by_class["inter-region"] == {"internet"}
    assert by_class["intra-site"] == {"datacenter"}


def test_the_replicated_kv_store_stays_linearizable_through_the_faults(result):
    [row] = result.table("consensus").to_dict("records")
    assert row["protocol"] == "raft" and row["mode"] == "internet" and row["members"] == 5
    assert row["ok"] > 100 and row["linearizable_and_safe"]
    # The East US crash takes down the first leader (it is a member): a new one is elected.
    leaders = result.table("consensus_leaders")
    assert len(leaders) >= 2 and leaders["time_s"].iloc[-1] > CRASH[1]


def test_without_a_core_count_there_is_no_cpu_section(result):
    assert "cpu" not in result


def test_with_a_core_count_the_report_shows_how_busy_each_nodes_cores_were(scenario):
    data = scenario.model_dump()
    data["topology"]["cores"] = 1
    busy = run_scenario(type(scenario).model_validate(data).with_overrides(duration=12.0))
    cpu = busy.table("cpu")
    assert len(cpu) == 24 and set(cpu["cores"]) == {1}
    assert cpu["jobs"].sum() > 0 and (cpu["busy_s"] > 0).any()  # the data plane's encoding work
    assert ((0 <= cpu["utilisation"]) & (cpu["utilisation"] <= 1.0 + 1e-9)).all()
    assert "CPU per node" in busy.summary()
