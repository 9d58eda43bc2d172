"""The probe's output, parsed: recorded outputs of real machines and broken ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from acode_placement.discovery.parse import (
    Gpu,
    ProbeOutputError,
    parse_nvidia_smi,
    parse_probe,
    parse_rocm_smi,
    summarise_gpus,
    vram_from_mib,
)
from acode_placement.discovery.probes import powershell_arguments, script, sh_arguments
from acode_placement.models import Arch, Capabilities, GpuVendor
from tests.conftest import FIXTURES

PROBES = FIXTURES / "probe"
H100 = FIXTURES / "gpu" / "h100-device"


def probe_output(name: str) -> str:
    return (PROBES / name).read_bytes().decode()


class TestRecordedMachines:
    def test_linux_without_gpu(self) -> None:
        report = parse_probe(probe_output("linux-x64-nogpu.txt"))
        caps = report.capabilities
        assert (caps.cpu, caps.memory_gb, caps.disk_gb) == (2, 23.6, 79.5)
        assert (caps.os, caps.arch, caps.network, caps.gpu) == ("linux", "x64", True, None)
        assert caps.tools == ("docker", "git", "kubectl", "python3")
        assert report.tools_checked == {"docker", "git", "kubectl", "python3"}
        assert report.hardware and not report.notes

    def test_eight_a100s(self) -> None:
        report = parse_probe(probe_output("linux-x64-a100x8.txt"))
        gpu = report.capabilities.gpu
        assert gpu is not None
        assert (gpu.type, gpu.model, gpu.vram_gb, gpu.count) == (
            "nvidia",
            "NVIDIA A100-SXM4-80GB",
            80,
            8,
        )
        # kubectl was asked about and is absent: known missing, not unknown.
        assert "kubectl" in report.tools_checked
        assert "kubectl" not in report.capabilities.tools

    def test_h100_from_the_lent_device(self) -> None:
        # nvidia-smi's own output on the H100 machine, inside a probe frame.
        raw = (H100 / "nvidia-smi-query.csv").read_text()
        gpus = parse_nvidia_smi(raw)
        assert gpus == [Gpu(GpuVendor.NVIDIA, "NVIDIA H100 80GB HBM3", 80.0, "580.159.04")]

    def test_h100_probe_output_recorded_on_the_device(self) -> None:
        report = parse_probe(probe_output("linux-x64-h100.txt"))
        caps = report.capabilities
        assert caps.gpu is not None
        assert (caps.gpu.type, caps.gpu.model, caps.gpu.vram_gb, caps.gpu.count) == (
            "nvidia",
            "NVIDIA H100 80GB HBM3",
            80,
            1,
        )
        # The machine's own figures, recorded in the same run (facts.txt).
        facts = (H100 / "discover" / "facts.txt").read_text().split("\n")
        assert caps.cpu == int(facts[0])
        assert caps.memory_gb == round(int(facts[1].split()[1]) / 1024**2, 1)
        assert caps.disk_gb == pytest.approx(int(facts[3].split()[3]) / 1024**2, abs=0.1)
        assert caps.tools == ("git", "nvidia-smi", "python3")

    def test_discover_json_recorded_on_the_device_parses_back(self) -> None:
        document = json.loads((H100 / "discover" / "discover.json").read_text())
        (local,) = document["targets"]
        caps = Capabilities.model_validate(local["capabilities"])
        assert caps.gpu is not None and caps.gpu.model == "NVIDIA H100 80GB HBM3"
        assert local["status"] == "fresh" and local["sources"]["gpu"] == "discovered"

    def test_two_amd_mi210_on_arm64(self) -> None:
        report = parse_probe(probe_output("linux-arm64-amd-mi210x2.txt"))
        caps = report.capabilities
        assert caps.arch is Arch.ARM64 and caps.network is False
        assert caps.gpu is not None
        assert (caps.gpu.type, caps.gpu.model, caps.gpu.vram_gb, caps.gpu.count) == (
            "amd",
            "AMD Instinct MI210",
            64,
            2,
        )

    def test_macos_arm64_reports_the_chip_gpu(self) -> None:
        caps = parse_probe(probe_output("macos-arm64.txt")).capabilities
        assert (caps.os, caps.arch, caps.cpu, caps.memory_gb) == ("macos", "arm64", 12, 32)
        assert caps.gpu is not None
        # Apple silicon's GPU has no memory of its own: it offers the system's, unified
        gpu = caps.gpu
        assert (gpu.type, gpu.model, gpu.unified) == ("apple", "Apple M2 Pro", True)
        assert gpu.vram_gb == caps.memory_gb == 32.0

    def test_windows_powershell_output_with_crlf(self) -> None:
        caps = parse_probe(probe_output("windows-x64-rtx3060.txt")).capabilities
        assert (caps.os, caps.arch, caps.cpu) == ("windows", "x64", 16)
        assert caps.memory_gb == 63.9 and caps.disk_gb == 756.7
        assert caps.gpu is not None and caps.gpu.model == "NVIDIA GeForce RTX 3060"
        assert caps.gpu.vram_gb == 12

    def test_a_failing_nvidia_driver_is_a_note_not_a_gpu(self) -> None:
        report = parse_probe(probe_output("linux-nvidia-driver-failed.txt"))
        assert report.capabilities.gpu is None
        assert report.capabilities.cpu == 8
        assert report.notes == (
            "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't"
            " communicate with the NVIDIA driver....",
        )

    def test_mixed_gpus_offer_every_kind_the_largest_first(self) -> None:
        report = parse_probe(probe_output("linux-mixed-gpus.txt"))
        caps = report.capabilities
        gpu = caps.gpu
        assert gpu is not None and (gpu.model, gpu.count) == ("NVIDIA GeForce RTX 4090", 2)
        assert [(k.model, k.vram_gb, k.count) for k in caps.gpus] == [
            ("NVIDIA GeForce RTX 4090", 24.0, 2),
            ("NVIDIA GeForce RTX 3060", 12.0, 1),
        ]
        assert report.notes == ()

    def test_tools_only_output(self) -> None:
        report = parse_probe(probe_output("tools-only.txt"))
        assert not report.hardware
        assert report.capabilities.tools == ("docker",)
        assert report.capabilities.cpu is None
        assert report.tools_checked == {"docker", "kubectl"}

    def test_a_login_banner_before_the_probe_is_skipped_and_said(self) -> None:
        report = parse_probe(probe_output("login-banner.txt"))
        assert report.capabilities.os == "linux"
        assert any("2 line(s) printed before the probe" in n for n in report.notes)


class TestBrokenOutput:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("truncated.txt", "cut short (no 'end' line)"),
            ("garbage.txt", "not a probe's output: it starts with"),
            ("bad-number.txt", "cpu 'many' is not a whole number"),
        ],
    )
    def test_recorded_breakage_is_refused_with_the_reason(self, name: str, message: str) -> None:
        with pytest.raises(ProbeOutputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_probe(probe_output(name))

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "printed nothing"),
            ("acode-probe 1\nos Linux\nnvidia-smi-begin\n0, A100, 1\n", "inside the nvidia-smi"),
            ("acode-probe 1\ncpu 2\ncpu 3\nend\n", "cpu given twice"),
            ("acode-probe 1\ntool docker maybe\nend\n", "bad tool line"),
        ],
    )
    def test_malformed_output(self, text: str, message: str) -> None:
        with pytest.raises(ProbeOutputError, match=message):
            parse_probe(text)

    def test_every_prefix_of_a_real_output_is_refused_or_parsed_never_crashes(self) -> None:
        text = probe_output("linux-x64-a100x8.txt")
        assert text.endswith("\nend\n")
        for cut in range(len(text) - 1):  # the last cut only drops the final newline
            try:
                parse_probe(text[:cut])
            except ProbeOutputError:
                continue
            pytest.fail(f"a cut at {cut} of {len(text)} characters was accepted")

    def test_bad_nvidia_lines_become_a_note(self) -> None:
        text = "acode-probe 1\nos Linux\nnvidia-smi-begin\nwhat is this\nnvidia-smi-end 0\nend\n"
        report = parse_probe(text)
        assert report.capabilities.gpu is None
        assert report.notes and report.notes[0].startswith("nvidia-smi: nvidia-smi line 1")

    def test_bad_rocm_json_becomes_a_note(self) -> None:
        with pytest.raises(ProbeOutputError, match="bad JSON"):
            parse_rocm_smi('{"card0": {')


class TestGpuNumbers:
    @pytest.mark.parametrize(
        ("mib", "gib"),
        [
            (81559, 80.0),  # H100 80GB HBM3 (recorded)
            (81920, 80.0),  # A100 80GB
            (24564, 24.0),  # RTX 4090
            (23028, 22.5),  # A10G: really 22.5 GiB usable, not rounded up
            (15360, 15.0),  # T4
            (46068, 45.0),  # L40S
        ],
    )
    def test_vram_is_the_nominal_size_only_when_just_under_it(self, mib: int, gib: float) -> None:
        assert vram_from_mib(mib) == gib

    def test_unknown_memory_is_none(self) -> None:
        assert parse_nvidia_smi("0, NVIDIA A100-SXM4-40GB, [N/A], 535.1") == [
            Gpu(GpuVendor.NVIDIA, "NVIDIA A100-SXM4-40GB", None, "535.1")
        ]

    def test_no_gpus_summarise_to_none(self) -> None:
        assert summarise_gpus([]) == (None, ())


def run_probe(argv: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(
        argv, input=script("probe.sh"), capture_output=True, text=True, check=True, cwd=cwd
    ).stdout


class TestTheShippedProbe:
    def test_runs_under_every_posix_shell_here(self, tmp_path: Path) -> None:
        shells = [s for s in ("sh", "dash", "bash", "busybox") if shutil.which(s)]
        assert "sh" in shells
        for shell in shells:
            prefix = [shell, "sh"] if shell == "busybox" else [shell]
            argv = [*prefix, *sh_arguments({"sh", "no-such-tool"}, False)[1:]]
            report = parse_probe(run_probe(argv, tmp_path))
            assert report.capabilities.tools == ("sh",), shell
            assert report.capabilities.cpu, shell
            assert report.tools_checked == {"sh", "no-such-tool"}

    def test_tool_names_are_arguments_never_code(self, tmp_path: Path) -> None:
        # The model refuses such names long before; the probe is safe even so.
        marker = tmp_path / "pwned"
        evil = f"$(touch {marker})"
        argv = sh_arguments({evil, f"; touch {marker}"}, tools_only=True)
        out = run_probe(argv)
        assert not marker.exists()
        assert f"tool {evil} 0" in out

    def test_tools_only_skips_the_hardware(self) -> None:
        argv = sh_arguments({"sh"}, tools_only=True)
        out = run_probe(argv)
        assert out == "acode-probe 1\ntool sh 1\nend\n"

    def test_powershell_command_quotes_every_tool(self) -> None:
        import base64

        argv = powershell_arguments({"git", "o'brien"}, tools_only=False)
        assert argv[:4] == ["powershell", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
        decoded = base64.b64decode(argv[4]).decode("utf-16-le")
        assert decoded.startswith("$Tools = @('git', 'o''brien')\n$ToolsOnly = $false\n")
        assert "acode-probe 1" in decoded
