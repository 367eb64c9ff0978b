"""llama-server as the second reference server (harness/llama_server.py): what it is built and started with, and
the serving comparison's table. Nothing here builds or runs llama.cpp (tox -e llama-server does)."""

from __future__ import annotations

from pathlib import Path

from harness import llama_server
from harness.bench import llama_cpp


def fake_build_tree(tmp_path, monkeypatch, cpu_flags: set[str]) -> list:
    """build() with its tree under tmp_path, cmake recorded instead of run, on a CPU with `cpu_flags`."""
    commands = []
    monkeypatch.setattr(llama_cpp, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(llama_cpp, "BINARIES", tmp_path / "build" / "bin")
    monkeypatch.setattr(llama_cpp, "fetch_source", lambda: Path("src"))
    monkeypatch.setattr(llama_cpp, "_run", lambda command, **kw: commands.append([str(c) for c in command]))
    monkeypatch.setattr("harness.bench.tiers.cpu_flags", lambda: cpu_flags)
    return commands


def test_the_server_target_is_configured_on_and_only_missing_tools_are_built(tmp_path, monkeypatch):
    commands = fake_build_tree(tmp_path, monkeypatch, {"avx2"})
    llama_cpp.build(tools=("llama-bench",))
    (tmp_path / "build" / "bin").mkdir(parents=True)
    (tmp_path / "build" / "bin" / "llama-bench").touch()
    commands.clear()
    llama_cpp.build(tools=(llama_cpp.SERVER, "llama-bench"))
    configure, build = commands
    assert "-DLLAMA_BUILD_SERVER=ON" in configure
    assert build[-2:] == ["--target", "llama-server"]
    (tmp_path / "build" / "bin" / "llama-server").touch()
    commands.clear()
    llama_cpp.build(tools=(llama_cpp.SERVER,))
    assert commands == []  # cached


def test_on_an_amx_cpu_ggml_is_built_without_amx_and_a_tree_built_otherwise_is_rebuilt(tmp_path, monkeypatch):
    """This llama.cpp's AMX kernels die with SIGILL on worker threads that never asked for AMX state."""
    commands = fake_build_tree(tmp_path, monkeypatch, {"avx2"})
    llama_cpp.build(tools=("llama-bench",))
    assert "-DCMAKE_CXX_FLAGS=" in commands[0]  # nothing added without AMX
    (tmp_path / "build" / "bin").mkdir(parents=True)
    (tmp_path / "build" / "bin" / "llama-bench").touch()
    commands = fake_build_tree(tmp_path, monkeypatch, {"avx2", "amx_tile", "amx_bf16"})
    llama_cpp.build(tools=("llama-bench",))
    configure, build = commands  # the tree built without the flags was dropped, so llama-bench is built again
    assert "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in configure
    assert build[-2:] == ["--target", "llama-bench"]
    assert (tmp_path / "build" / "infini-qwen3-flags.txt").read_text() == "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def test_the_server_serves_the_gguf_under_the_alias_with_its_chat_template(tmp_path):
    server = llama_server.LlamaServer(tmp_path / "m.gguf", "qwen3-demo", tmp_path / "log", port=8123, threads=2,
                                      context=512, slots=8)
    command = server.command()
    assert command[0].endswith("llama-server")
    assert command[command.index("-m") + 1] == str(tmp_path / "m.gguf")
    assert command[command.index("--alias") + 1] == "qwen3-demo"
    assert command[command.index("--host") + 1] == "127.0.0.1" and server.base_url == "http://127.0.0.1:8123"
    assert command[command.index("-c") + 1] == str(512 * 8)  # each of the 8 slots gets `context` tokens
    assert command[command.index("-np") + 1] == "8" and command[command.index("-t") + 1] == "2"
    assert "--jinja" in command


def test_the_serving_comparison_puts_both_servers_tables_in_one_report():
    row = {"streams": 1, "ttft_p50": 0.5, "ttft_p95": 0.6, "itl_p50": 0.1, "itl_p95": 0.2,
           "output_tokens_per_s": 9.5, "cached_tokens": 0}
    servers = {"infini-qwen3": [row], "llama-server": [dict(row, ttft_p50=1.5)]}
    text = llama_server.serving_markdown({"servers": servers})
    ours, theirs = text.split("**llama-server**")
    assert "**infini-qwen3**" in ours and "| 1 | 0.500 |" in ours
    assert "| 1 | 1.500 |" in theirs
