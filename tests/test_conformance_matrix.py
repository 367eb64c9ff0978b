"""The conformance matrix report: JUnit XML of runs against several servers -> a feature x server table whose
cells name the failing case or the skip reason, with every failure and skip listed by test id."""

from __future__ import annotations

from harness.conformance_matrix import main, matrix, read_cases

OURS = """<testsuites><testsuite name="pytest">
<testcase classname="conformance.test_chat" name="test_stream_shape" time="0.1">
  <properties><property name="feature" value="SSE stream: chunk shape and order, [DONE]"/></properties></testcase>
<testcase classname="conformance.test_chat" name="test_usage_chunk" time="0.1"/>
<testcase classname="conformance.test_lifecycle" name="test_metrics" time="0.1"/>
</testsuite></testsuites>"""
THEIRS = """<testsuites><testsuite name="pytest">
<testcase classname="conformance.test_chat" name="test_stream_shape" time="0.1"/>
<testcase classname="conformance.test_chat" name="test_usage_chunk" time="0.1">
  <failure message="AssertionError: no usage chunk before [DONE]&#10;assert None">trace</failure></testcase>
<testcase classname="conformance.test_lifecycle" name="test_metrics" time="0.0">
  <skipped type="pytest.skip" message="needs this project's own server (module test_lifecycle)"/></testcase>
<testcase classname="tests.test_other" name="test_unit" time="0.0"/>
</testsuite></testsuites>"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cases_are_read_with_their_outcome_and_first_line(tmp_path):
    cases = read_cases(write(tmp_path, "theirs.xml", THEIRS))
    assert [(c.test_id, c.outcome) for c in cases] == [
        ("conformance/test_chat.py::test_stream_shape", "passed"),
        ("conformance/test_chat.py::test_usage_chunk", "failed"),
        ("conformance/test_lifecycle.py::test_metrics", "skipped")]  # unit tests are not conformance cases
    assert cases[1].detail == "AssertionError: no usage chunk before [DONE]"
    assert cases[2].detail == "needs this project's own server (module test_lifecycle)"


def test_each_case_has_its_feature_from_the_xml_or_from_its_name(tmp_path):
    ours = read_cases(write(tmp_path, "ours.xml", OURS))
    assert [c.feature for c in ours] == ["SSE stream: chunk shape and order, [DONE]",  # the suite's tag
                                         "usage and stream_options",  # no tag: the rules, by the name
                                         "health, metrics, auth, queue limits"]  # no rule: the module's


def test_the_matrix_has_a_row_per_feature_and_traces_each_cell(tmp_path):
    runs = {"infini-qwen3": read_cases(write(tmp_path, "ours.xml", OURS)),
            "llama-server": read_cases(write(tmp_path, "theirs.xml", THEIRS))}
    table = matrix(runs)
    rows = table.splitlines()
    assert rows[0] == "| feature | infini-qwen3 | llama-server |"
    assert [r.split(" | ")[0] for r in rows[2:5]] == ["| SSE stream: chunk shape and order, [DONE]",
                                                      "| usage and stream_options",
                                                      "| health, metrics, auth, queue limits"]
    usage = next(r for r in rows if r.startswith("| usage"))
    assert "pass 1/1" in usage and "FAIL 0/1: `conformance/test_chat.py::test_usage_chunk`" in usage
    lifecycle = next(r for r in rows if r.startswith("| health"))
    assert "skipped (needs this project's own server (module test_lifecycle))" in lifecycle
    assert "- failed `conformance/test_chat.py::test_usage_chunk`: AssertionError" in table


def test_the_command_writes_markdown_and_names_servers(tmp_path):
    out = tmp_path / "matrix.md"
    ours = write(tmp_path, "ours.xml", OURS)
    assert main(["--results", f"{ours}=mine", "--out", str(out)]) == 0
    assert out.read_text().startswith("| feature | mine |")
    assert main(["--results", str(tmp_path / "missing.xml")]) == 1
