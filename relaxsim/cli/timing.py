"""``relaxsim timing``: what a machine built from the chosen devices achieves, from the SimPy model.

    relaxsim timing [CONFIG] [--set KEY=VALUE ...] [--trace trace.csv] [--plot timeline.png]
                    [--inferences N] [--json FILE] [--schedule FILE]

Latency per inference, throughput, utilisation of every bank, switch and the readout, energy per
inference by device kind, and the same machine's figures against a single bank reprogrammed
between steps and a fully unrolled DNN (:meth:`relaxsim.hardware.Hardware.figures`). The event
trace of one inference (a short stream when pipelined) goes to a CSV file
(:func:`relaxsim.timing.trace_csv`) and to a timeline plot
(:func:`relaxsim.report.figures.plot_timeline`), and the control sequence it commands to a CSV,
JSON or VCD file (:mod:`relaxsim.control`); this module only writes the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relaxsim.config import network_kind
from relaxsim.devices import format_quantity
from relaxsim.errors import RelaxsimError
from relaxsim.io import check_output_path


def add_timing_command(sub) -> None:
    """Register ``relaxsim timing`` on the subcommand parsers ``sub`` of the main parser."""
    from relaxsim.cli.common import add_config_args

    p = sub.add_parser("timing", help="latency, throughput, utilisation and energy of the machine "
                                      "(SimPy model), against a reprogrammed bank and a DNN")
    add_config_args(p)
    p.add_argument("--trace", metavar="CSV", help="write the event trace (time_s, actor, action, "
                                                  "inference, step, bank, slot)")
    p.add_argument("--plot", metavar="IMAGE",
                   help="draw the trace as a timeline (.png, .svg or .pdf)")
    p.add_argument("--inferences", type=int, metavar="N",
                   help="inferences in the trace and the plot (default: 1 sequential; pipelined, "
                        "a short stream: 2 x hardware.in_flight + 1)")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    p.add_argument("--schedule", metavar="FILE",
                   help="write the control sequence of the trace: switch commands, programming "
                        "and readout (.csv, .json) or a waveform of every device (.vcd)")
    p.set_defaults(func=cmd_timing)


def cmd_timing(args) -> int:
    import warnings

    from relaxsim.assembly import assemble
    from relaxsim.cli.common import load_config_args
    from relaxsim.errors import HardwareWarning
    from relaxsim.hardware import describe_clock
    from relaxsim.io import write_json
    from relaxsim.report.figures import plot_timeline

    if args.inferences is not None and args.inferences < 1:
        raise RelaxsimError(f"--inferences: must be >= 1 (got {args.inferences})")
    outputs = [(option, path) for option, path in (("--trace", args.trace),
                                                   ("--plot", args.plot), ("--json", args.json),
                                                   ("--schedule", args.schedule))
               if path is not None]
    for option, path in outputs:
        check_output_path(option, path)
    for i, (option, path) in enumerate(outputs):  # one file for two outputs: one would be lost
        for other, other_path in outputs[i + 1:]:
            if Path(path).resolve() == Path(other_path).resolve():
                raise RelaxsimError(f"{other} {other_path!r}: the same file as {option}; give "
                                    "each output its own file")
    if args.schedule is not None:
        from relaxsim.control import schedule_format

        schedule_format(args.schedule)
    if args.plot is not None:
        image_format(args.plot)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise RelaxsimError("--plot: needs matplotlib (pip install 'matplotlib>=3.7')"
                                ) from None
    args.config = run_config(args.config)
    cfg = load_config_args(args)
    net = cfg.network
    machine = assemble(cfg)
    hw, figures, coupling = machine.hardware, machine.figures, machine.coupling
    cautions = machine.cautions()
    for message in cautions:
        warnings.warn(message, HardwareWarning, stacklevel=2)
    figures = {**figures, "training_per_sample": machine.training_per_sample()}
    print(report(cfg, hw, figures, coupling))
    if args.json:
        write_output("--json", args.json, lambda p: write_json(p, {
            **figures, "coupling": machine.coupling_summary(),
            "warnings": cautions, "config": cfg.to_dict()}))
    if args.trace or args.plot or args.schedule:
        sim = machine.timing.trace(args.inferences)
        if args.schedule:
            from relaxsim.control import write_schedule

            write_output("--schedule", args.schedule, lambda p: write_schedule(p, sim))
        if args.trace:
            write_output("--trace", args.trace, lambda p: write_trace(p, sim.trace))
        if args.plot:
            title = (f"{network_kind(net.banks, net.steps)} L_W = {net.banks}, L_T = {net.steps}, "
                     f"{describe_clock(hw)}, {hw.pipelining}: latency "
                     f"{format_quantity(figures['latency_s'], 'time')}, a new inference every "
                     f"{format_quantity(figures['period_s'], 'time')}")
            write_output("--plot", args.plot, lambda p: plot_timeline(sim, p, title))
    return 0


def run_config(path: str | None) -> str | None:
    """The config of ``path``: the file itself, or a run directory's ``config.toml``."""
    if path is None or not Path(path).is_dir():
        return path
    config = Path(path) / "config.toml"
    if not config.is_file():
        raise RelaxsimError(f"{path}: a directory without config.toml; give a config file or a "
                            "run directory written by relaxsim run")
    return str(config)


# -- the report ------------------------------------------------------------------------------

def rate(per_s: float) -> str:
    """Inferences per second with an SI prefix: ``3.689 G/s``."""
    return format_quantity(per_s, "frequency").replace("Hz", "/s")


def ratio(x: float) -> str:
    return f"{x:.3g}x" if 1e-3 <= x < 1e4 else f"{x:.2e}x"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip()
            for row in rows]


def report(cfg, hw, figures: dict, coupling=None) -> str:
    """The figures as the command prints them: devices, the three architectures side by side,
    utilisation and energy, every number with its unit (and, given the ``coupling``, what the
    step timing does to the network)."""
    from relaxsim.hardware import ARCH_NAMES, describe_clock

    net, tol = cfg.network, hw.settle_tolerance
    t_mm = hw.propagation_time_s
    t_sw, t_st = hw.switch.settle_time_s(tol), hw.active.settle_time_s(tol)
    schedule = net.schedule if isinstance(net.schedule, str) else "explicit"
    mode = hw.pipelining if hw.pipelining == "sequential" else (
        f"pipelined, {hw.in_flight} in flight")
    devices = [
        ["switch", hw.switch.name, f"settles in {format_quantity(t_sw, 'time')} "
                                   f"(to {100 * tol:g} % of the old path)"],
        ["weights", hw.weights.name,
         f"programs a bank in {format_quantity(hw.bank_program_time_s, 'time')} (settled to "
         f"half a level; a write's 10-90 % time "
         f"{format_quantity(hw.weights.program_time_s, 'time')})"],
        ["active", hw.active.name, f"settles in {format_quantity(t_st, 'time')}"],
        ["bank", "", f"T_MM = {format_quantity(t_mm, 'time')}; readout "
                     f"{format_quantity(hw.readout_time_s, 'time')}"],
    ]
    if coupling is not None:
        note = ""
        if hw.clock_s is not None and hw.clock_s - t_mm < max(t_sw, t_st):
            left = format_quantity(hw.clock_s - t_mm, "time")
            note = (f" (the clock leaves {left} to settle: too short, see the warning)"
                    if hw.settling_warnings(coupling) else
                    f" (the clock leaves {left} to settle, less than the "
                    f"{format_quantity(max(t_sw, t_st), 'time')} to {100 * tol:g} %)")
        devices.append(["coupling", "", (
            f"switch leak eps up to {coupling.eps.max():.3g}, element carry-over up to "
            f"{(1.0 - coupling.c).max():.3g} per step" + note)])
        devices.append(["routing", "", describe_routing(hw, net.banks, coupling)])
        devices.append(["budget", "", describe_budget(hw)])
        devices.append(["converters", "", describe_converters(hw)])
    lines = [
        f"{network_kind(net.banks, net.steps)} timing: N = {net.hidden}, L_W = {net.banks}, "
        f"L_T = {net.steps} ({schedule}), {describe_clock(hw)}, {mode}",
        *_table(devices),
    ]
    if coupling is not None and coupling.mix is not None:
        lines += ["", "mixing m[t, j]: each bank's share of step t (W_eff = sum_j m[t, j] W_j), "
                  "a and c of the state update h' = a h + c f(u)"]
        head = ["step", "bank", *[f"m[t,{j}]" for j in range(coupling.mix.shape[1])], "a", "c"]
        lines += _table([head] + [
            [str(t), str(int(k)), *[f"{x:.4g}" for x in coupling.mix[t]],
             f"{coupling.a[t]:.4g}", f"{coupling.c[t]:.4g}"]
            for t, k in enumerate(machine_schedule(coupling))])
    lines.append("")
    base_lat, base_thr = figures["latency_s"], figures["throughput_per_s"]
    rows = [["architecture", "banks", "latency", "period", "throughput", "latency ratio",
             "throughput ratio"],
            [ARCH_NAMES["relaxnet"], str(net.banks), format_quantity(base_lat, "time"),
             format_quantity(figures["period_s"], "time"), rate(base_thr), "1x", "1x"]]
    for arch, banks in (("reprogram", 1), ("unrolled", net.steps)):
        fig = figures["compare"][arch]
        rows.append([ARCH_NAMES[arch], str(banks), format_quantity(fig["latency_s"], "time"),
                     format_quantity(fig["period_s"], "time"),
                     rate(fig["throughput_per_s"]), ratio(fig["latency_s"] / base_lat)
                     if base_lat > 0 else "-", ratio(fig["throughput_per_s"] / base_thr)
                     if base_thr not in (0, float("inf")) else "-"])
    lines += _table(rows)
    lines.append("  latency: one inference alone, admission to readout; period: time per "
                 "inference in the steady state of a stream (throughput = 1 / period; the "
                 "static energy is paid over it)")
    latency_under_load = figures.get("latency_under_load_s")
    if latency_under_load is not None:
        lines.append(f"  latency under load (steady state, {hw.in_flight} in flight): "
                     f"{format_quantity(latency_under_load, 'time')}")
    lines += ["", "utilisation (steady state, over whole periods)"]
    lines += _table(utilisation_rows(figures["utilisation"]))
    total = figures["energy_per_inference_j"]
    lines += ["", f"energy per inference  {format_quantity(total, 'energy')} (static power's "
              f"share at {100 * figures['stated_utilisation']:g} % utilisation)"]
    lines += _table([[kind, format_quantity(e, "energy"),
                      f"{100 * e / total:.1f} %" if total > 0 else "-"]
                     for kind, e in figures["energy_breakdown_j"].items()])
    if "architectures" in figures:
        lines += ["", *architecture_table(figures["architectures"])]
    training = figures.get("training_per_sample")
    if training is not None:
        lines += ["", *training_lines(training)]
    return "\n".join(lines)


def _energy(x: float) -> str:
    return "inf" if x == float("inf") else format_quantity(x, "energy")


def architecture_table(accounts: dict) -> list[str]:
    """The architectures side by side: devices, static power and energy per inference by kind,
    MACs, J/MAC and TOPS/W (:func:`relaxsim.energy.account`)."""
    from relaxsim.energy import DEVICE_KINDS, KINDS, STATIC_KINDS
    from relaxsim.hardware import ARCH_NAMES

    archs = list(accounts)
    rows = [["", *(ARCH_NAMES.get(a, a) for a in archs)]]
    rows.append(["banks", *(str(accounts[a]["banks"]) for a in archs)])
    rows.append(["throughput", *(rate(accounts[a]["throughput_per_s"]) for a in archs)])
    rows.append(["in the system (L = lambda W)",
                 *(f"{accounts[a]['in_system']:.3g}" for a in archs)])
    rows.append(["devices", *([""] * len(archs))])
    rows += [[f"  {kind.replace('_', ' ')}", *(str(accounts[a]["devices"][kind]) for a in archs)]
             for kind in DEVICE_KINDS]
    rows.append(["static power", *(format_quantity(accounts[a]["static_power_total_w"], "power")
                                   for a in archs)])
    rows += [[f"  {kind}", *(format_quantity(accounts[a]["static_power_w"][kind], "power")
                             for a in archs)] for kind in STATIC_KINDS]
    rows.append(["energy per inference", *(_energy(accounts[a]["energy_per_inference_j"])
                                           for a in archs)])
    rows += [[f"  {kind}", *(_energy(accounts[a]["energy_breakdown_j"][kind]) for a in archs)]
             for kind in KINDS]
    rows.append(["MACs per inference", *(str(accounts[a]["macs_per_inference"]) for a in archs)])
    rows.append(["energy per MAC", *(_energy(accounts[a]["j_per_mac"]) for a in archs)])
    rows.append(["TOPS/W", *(f"{accounts[a]['tops_per_w']:.3g}" for a in archs)])
    return ["architectures on equal terms (docs/energy.md): the same network, the same devices",
            *_table(rows)]


def training_lines(training: dict) -> list[str]:
    """Hardware time and energy of one training sample, by phase (:func:`relaxsim.energy.training`)."""
    times, energy = training["time_s"], training["energy_j"]
    rows = [["phase", "time", "energy"]]
    rows += [[phase, format_quantity(times[phase], "time") if phase in times else
              "(the others')", format_quantity(energy.get(phase, 0.0), "energy")]
             for phase in ("forward", "readout", "digital", "programming", "static")]
    rows.append(["total", format_quantity(training["time_total_s"], "time"),
                 format_quantity(training["energy_total_j"], "energy")])
    return ["training on the machine, per training sample (programming amortised over "
            "batch_size x update_every samples; docs/energy.md)", *_table(rows)]


def machine_schedule(coupling) -> list[int]:
    """The bank each step selects (the router's schedule)."""
    return list(coupling.router.schedule)


def describe_budget(hw) -> str:
    """``laser 1 mW per channel, loss 7 dB (...), received 199.5 uW, SNR 79.1 (shot limit
    141), noise 1.26 % per step, 1.26 % at the readout``."""
    noise = (f"noise {100 * hw.element_sigma:.3g} % per step, {100 * hw.detector_sigma:.3g} % "
             "at the readout" + ("" if hw.active.is_auto("noise") and
                                 hw.active.is_auto("detector_noise") else " (as set)"))
    b = hw.budget
    if b is None:
        return f"electrical signal: no optical budget; {noise}"
    parts = ", ".join(f"{k} {v:.3g}" for k, v in b.losses_db.items())
    snr = "inf" if b.snr == float("inf") else f"{b.snr:.3g}"
    return (f"laser {format_quantity(b.laser_w, 'power')} per channel, loss {b.loss_db:.3g} dB "
            f"({parts}), received {format_quantity(b.received_w, 'power')}, SNR {snr} "
            f"(shot limit {b.shot_snr:.3g}) in {format_quantity(b.bandwidth_hz, 'frequency')}; "
            + noise)


def describe_converters(hw) -> str:
    """``DAC 6 bits (quantisation noise 0.916 % of full scale), no ADC``."""
    def one(name, bits):
        if bits == float("inf"):
            return f"no {name}"
        return (f"{name} {bits:.0f} bits (quantisation noise "
                f"{100 * hw.quantisation_noise(bits):.3g} % of full scale)")

    if hw.input_bits == float("inf") and hw.readout_bits == float("inf"):
        return "none (hardware.input_bits and readout_bits are inf)"
    return (f"{one('DAC', hw.input_bits)} on the injected inputs, "
            f"{one('ADC', hw.readout_bits)} at the readout; full scales calibrated on the "
            "training split")


def describe_routing(hw, banks: int, coupling) -> str:
    """``coherent, star 1 x 2 + mirrored switch, 1 dB path loss, leak into each other bank
    sqrt(e/(1-e)) = 0.0563 settled``: the signal domain, topology and what it leaks."""
    from relaxsim.devices import routing

    loss = routing.path_loss_db(banks, hw.switch_topology, hw.mux, hw.switch.insertion_loss_db)
    side = "mirrored switch" if hw.mux == "switch" else "combiner"
    topo = (f"star 1 x {banks}" if hw.switch_topology == "star"
            else f"tree of {routing.stages(banks, 'tree')} levels of 1 x 2")
    text = f"{hw.signal}, {topo} + {side}, path loss {loss:.3g} dB"
    if banks > 1 and coupling is not None and coupling.mix is not None:
        settled = routing.mixing(banks, 0, 0, 0.0, topology=hw.switch_topology, mux=hw.mux,
                                 signal=hw.signal, power_floor=hw.switch.leak_floor,
                                 amplitude_floor=hw.switch.amplitude_floor)
        worst = float(np.max(settled[1:]) / settled[0])
        text += f"; settled leak into another bank {worst:.3g} of the selected bank's share"
    return text


GROUP_ABOVE = 8  # more resources of one kind than this print as one row: mean, min, max


def utilisation_rows(utilisation: dict[str, float]) -> list[list[str]]:
    """One row per resource, ``[name, "12.9 %"]``; a kind with more than ``GROUP_ABOVE`` of them
    (the switches of many inferences in flight) as one row ``switch0..99 (100)`` with the mean,
    minimum and maximum."""
    kinds: dict[str, list[tuple[str, float]]] = {}
    for name, share in utilisation.items():
        kinds.setdefault(name.rstrip("0123456789"), []).append((name, share))
    rows = []
    for kind, members in kinds.items():
        if len(members) <= GROUP_ABOVE:
            rows += [[name, f"{100 * share:.1f} %"] for name, share in members]
        else:
            shares = [share for _, share in members]
            rows.append([f"{members[0][0]}..{members[-1][0][len(kind):]} ({len(members)})",
                         f"{100 * sum(shares) / len(shares):.1f} % mean",
                         f"{100 * min(shares):.1f} % min", f"{100 * max(shares):.1f} % max"])
    width = max(len(row) for row in rows)
    return [row + [""] * (width - len(row)) for row in rows]


# -- the trace -------------------------------------------------------------------------------

def write_trace(path, trace) -> None:
    """Write the rows of ``trace`` as CSV (:func:`relaxsim.timing.trace_csv`), atomically."""
    from relaxsim.io import write_text
    from relaxsim.timing import trace_csv

    write_text(path, trace_csv(trace))


def write_output(option: str, path: str, write) -> None:
    try:
        write(path)
    except OSError as exc:
        raise RelaxsimError(f"{option} {path!r}: cannot write ({exc.strerror or exc})") from None


# -- the timeline ----------------------------------------------------------------------------

def image_format(path: str) -> str:
    """The format of ``--plot path`` (:func:`relaxsim.report.figures.timeline_format`)."""
    from relaxsim.report.figures import timeline_format

    try:
        return timeline_format(path)
    except RelaxsimError as exc:
        raise RelaxsimError(f"--plot {exc}") from None
