"""One period per machine, from the simulated stream, and warnings for an unsettled clock.

A fixed clock may leave the active element settling after the readout: the next inference is
admitted only once it is free, so the period of a sequential stream can exceed the latency of one
inference. Throughput, energy, utilisation, the trace and the plot's title must all read that one
period; a clock too short for the switch or the element gets a one-line warning naming the device
and the clock it needs.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.errors import HardwareWarning
from relaxsim.hardware import SETTLE_WARNING, build_hardware
from relaxsim.report import figures
from relaxsim.schedules import resolve

PERIOD_RTOL = 1e-9  # differences of event times of a few hundred ps: far above an ulp
PS = 1e-12
TINY = {"network.hidden": 8, "training.epochs": 1, "training.batch_size": 128}


def machine(**overrides):
    cfg = relaxsim.load_config(overrides=overrides)
    net = cfg.network
    hw = build_hardware(cfg.hardware)
    schedule = resolve(net.schedule, net.banks, net.steps)
    return cfg, hw, schedule


def invoke(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# -- one period --------------------------------------------------------------------------------

def test_fixed_clock_period_is_the_streams_and_longer_than_the_latency():
    """30 ps clock, T_MM 10 ps: the element (55 ps to settle) still settles 25 ps after the
    readout, so inference 1 is admitted at 155 ps although inference 0 ends at 130 ps."""
    cfg, hw, schedule = machine(**{"hardware.clock": "30 ps"})
    fig = hw.figures(schedule, cfg.network.banks, cfg.network.hidden)
    sim = hw.simulate(schedule, cfg.network.banks, n=4)
    admitted = [inf.admitted for inf in sim.inferences]
    period = admitted[2] - admitted[1]
    assert fig["latency_s"] == pytest.approx(130 * PS, rel=PERIOD_RTOL)
    assert period > fig["latency_s"]
    assert fig["period_s"] == pytest.approx(period, rel=PERIOD_RTOL)
    assert fig["throughput_per_s"] == pytest.approx(1 / period, rel=PERIOD_RTOL)
    # the unrolled DNN pays the same element settling: the same period
    assert fig["compare"]["unrolled"]["period_s"] == pytest.approx(period, rel=PERIOD_RTOL)


def test_auto_clock_sequential_period_equals_the_latency():
    cfg, hw, schedule = machine()
    fig = hw.figures(schedule, cfg.network.banks, cfg.network.hidden)
    assert fig["period_s"] == pytest.approx(fig["latency_s"], rel=PERIOD_RTOL)
    assert fig["throughput_per_s"] == pytest.approx(1 / fig["latency_s"], rel=PERIOD_RTOL)


def test_energy_and_utilisation_use_the_period():
    """Static energy ``devices x P_static x period``; a bank used twice per inference for T_MM is
    busy ``2 T_MM / period`` of the time."""
    cfg, hw, schedule = machine(**{"hardware.clock": "30 ps",
                                   "hardware.switch.rise_time": "300 ps"})
    net = cfg.network
    fig = hw.figures(schedule, net.banks, net.hidden)
    # the mesh banks' phase shifters: 2 N (N - 1) + N each, P_pi on average
    heaters = net.banks * (2 * net.hidden * (net.hidden - 1) + net.hidden)
    assert fig["energy_breakdown_j"]["weights"] == pytest.approx(
        heaters * hw.weights.phase_power_w * fig["period_s"], rel=PERIOD_RTOL)
    uses = list(schedule).count(0)
    assert fig["utilisation"]["bank0"] == pytest.approx(
        uses * hw.propagation_time_s / fig["period_s"], rel=1e-6)
    assert all(0 <= share <= 1 + 1e-12 for share in fig["utilisation"].values())


def test_timing_json_trace_energy_and_title_agree(tmp_path, capsys, monkeypatch):
    titles = []
    monkeypatch.setattr(figures, "plot_timeline", lambda sim, path, title="": titles.append(
        title))
    js, trace = tmp_path / "t.json", tmp_path / "t.csv"
    status, out, err = invoke(["timing", "--set", "hardware.clock=30 ps", "--inferences", 3,
                               "--trace", trace, "--json", js, "--plot", tmp_path / "t.png"],
                              capsys)
    assert status == 0, err
    fig = json.loads(js.read_text())
    with open(trace, newline="") as fh:
        admits = [float(r["time_s"]) for r in csv.DictReader(fh) if r["actor"] == "source"]
    assert len(admits) == 3
    assert np.diff(admits) == pytest.approx([fig["period_s"]] * 2, rel=PERIOD_RTOL)
    assert fig["throughput_per_s"] == pytest.approx(1 / fig["period_s"], rel=PERIOD_RTOL)
    period_text = relaxsim.devices.format_quantity(fig["period_s"], "time")
    assert period_text in titles[0] and "130 ps" in titles[0]
    assert period_text in out  # the printed table has the period column
    # the per-step coupling is machine-readable
    coupling = fig["coupling"]
    assert coupling["switching"] == [False, True, True, True]
    assert len(coupling["switch_leak"]) == len(coupling["carry_over"]) == 4
    assert coupling["switch_leak"][0] == 0.0
    assert 0 < coupling["carry_over"][1] < 1


# -- warnings ----------------------------------------------------------------------------------

def test_no_warning_on_the_default_machine():
    cfg, hw, schedule = machine()
    coupling = hw.coupling(schedule, cfg.network.alpha, cfg.network.activation)
    assert hw.cautions(coupling) == []


@pytest.mark.parametrize("overrides,device", [
    ({"hardware.clock": "30 ps", "hardware.switch.rise_time": "1.2 us"}, "switch eo_mzi"),
    ({"hardware.clock": "12 ps"}, "active element electronic_tanh"),
])
def test_the_needed_clock_settles_the_device_to_the_threshold(overrides, device):
    """The clock a warning names brings the device's leak or carry-over to the threshold (and a
    clock 1 % longer below it, without the warning)."""
    cfg, hw, schedule = machine(**overrides)
    coupling = hw.coupling(schedule, cfg.network.alpha, cfg.network.activation)
    lines = [w for w in hw.settling_warnings(coupling) if device in w]
    assert len(lines) == 1
    needed = lines[0].split("needs hardware.clock >= ")[1].split(" (")[0]
    from relaxsim.devices.units import parse_quantity

    clock = parse_quantity(needed, "time", "test") * 1.01
    cfg2, hw2, _ = machine(**{**overrides, "hardware.clock": f"{clock!r} s"})
    c2 = hw2.coupling(schedule, cfg2.network.alpha, cfg2.network.activation)
    left = c2.eps.max() if device.startswith("switch") else (1 - c2.c).max()
    assert SETTLE_WARNING * 0.9 < left < SETTLE_WARNING  # 1 % more time: just below
    assert not [w for w in hw2.settling_warnings(c2) if device in w]


def test_timing_warns_in_one_line(capsys):
    status, out, err = invoke(["timing", "--set", "hardware.clock=30 ps",
                               "--set", "hardware.switch.rise_time=1.2 us"], capsys)
    assert status == 0
    lines = [line for line in err.splitlines() if line.startswith("relaxsim: warning:")]
    assert len(lines) == 1 and "switch eo_mzi" in lines[0] and "99.7 %" in lines[0]
    # an MZI response, tau = 1.2 us / 1.3565: remainder (0.1 - e) / (1 - 2e) at 1.405 us
    assert "needs hardware.clock >= 1.415 us" in lines[0]
    assert "Traceback" not in err


def test_run_and_evaluate_warn_and_record_it(tmp_path, capsys):
    out_dir = tmp_path / "run"
    sets = [a for k, v in {**TINY, "hardware.clock": "12 ps"}.items()
            for a in ("--set", f"{k}={v}")]
    status, out, err = invoke(["run", "--out", out_dir, "--quiet", *sets], capsys)
    assert status == 0, err
    warned = [line for line in err.splitlines() if line.startswith("relaxsim: warning:")]
    assert len(warned) == 2, err
    result = json.loads((out_dir / "result.json").read_text())
    assert result["hardware"]["warnings"] == [w.removeprefix("relaxsim: warning: ")
                                              for w in warned]
    assert result["hardware"]["coupling"]["carry_over"][0] == pytest.approx(
        math.exp(-2 * PS / build_hardware(relaxsim.load_config().hardware)
                 .active.response_time_s), rel=1e-9)
    status, out, err = invoke(["evaluate", out_dir, "--repeats", 1], capsys)
    assert status == 0, err
    assert sum(line.startswith("relaxsim: warning:") for line in err.splitlines()) == 2


def test_python_api_warns_with_a_category():
    cfg = relaxsim.load_config(overrides={**TINY, "hardware.clock": "12 ps"})
    with pytest.warns(HardwareWarning, match="needs hardware.clock"):
        relaxsim.run(cfg)


def test_in_flight_without_pipelining_is_reported(capsys):
    status, out, err = invoke(["timing", "--set", "hardware.in_flight=4"], capsys)
    assert status == 0
    assert ("relaxsim: warning: hardware.in_flight = 4 has no effect with "
            "hardware.pipelining = 'sequential'") in err
    status, out, err = invoke(["timing", "--set", "hardware.in_flight=4",
                               "--set", "hardware.pipelining=pipelined"], capsys)
    assert "warning" not in err


# -- the timing command's smaller promises -----------------------------------------------------

def test_one_file_for_two_outputs_is_refused(tmp_path, capsys):
    path = tmp_path / "same"
    status, out, err = invoke(["timing", "--json", path, "--trace", path], capsys)
    assert status == 2
    assert err == (f"relaxsim: error: --json {str(path)!r}: the same file as --trace; give "
                   "each output its own file\n")
    assert not path.exists()


def test_timing_reads_a_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(
        relaxsim.load_config(overrides={"network.banks": 3, "network.steps": 6}).to_toml())
    status, out, err = invoke(["timing", run_dir], capsys)
    assert status == 0, err
    assert "L_W = 3, L_T = 6" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    status, out, err = invoke(["timing", empty], capsys)
    assert status == 2
    assert err == (f"relaxsim: error: {empty}: a directory without config.toml; give a config "
                   "file or a run directory written by relaxsim run\n")


def test_many_elements_in_flight_print_one_row_per_kind(capsys):
    status, out, err = invoke(["timing", "--set", "hardware.pipelining=pipelined",
                               "--set", "hardware.in_flight=100"], capsys)
    assert status == 0, err
    block = out.split("utilisation")[1].split("energy")[0]
    rows = [line for line in block.splitlines()[1:] if line.strip()]
    assert len(rows) == 4  # bank0, bank1, the 100 switches in one row, readout
    assert any(line.strip().startswith("switch0..99 (100)") for line in rows)


def test_a_scan_counts_its_points_on_an_unsettled_machine(tmp_path, capsys):
    """Workers keep their warnings quiet (each is in its point's result); the driver says in one
    line how many points ran on an unsettled machine."""
    spec = tmp_path / "scan.toml"
    spec.write_text('[base.network]\nhidden = 8\n[base.training]\nepochs = 1\n'
                    '[grid]\n"hardware.clock" = ["12 ps", "1 ns"]\n')
    status, out, err = invoke(["scan", spec, "--out", tmp_path / "store", "--workers", 1,
                               "--quiet"], capsys)
    assert status == 0, err
    assert err.splitlines() == [
        f"relaxsim: warning: 1 of 2 points ran on a machine whose clock leaves the switch or the "
        f"active element unsettled by more than 10 %; `relaxsim report {tmp_path / 'store'}` "
        "lists them"]
