"""Renders bench/RESULTS.md from the results dict that bench/run_bench.py builds.

Every figure in the text comes from the results of the run being written, so the document
never drifts from results.json. Python standard library only.
"""

MICRO_DESCRIPTIONS = {
    "BM_BusWrite_Handled": "I/O bus write to a port a device covers (COM1), 8 devices on the bus",
    "BM_BusWrite_Unhandled": "I/O bus write nobody covers (port 0x5e0: the pio_exits guest's "
                             "path in crosvm)",
    "BM_MmioBusWrite_Unhandled": "MMIO bus write nobody covers (0xd8000000: the mmio_exits "
                                 "guest's path)",
    "BM_BusRead_Handled": "I/O bus read a device covers (COM1 LSR)",
    "BM_BusWrite_Handled_Contended/real_time/threads:2":
        "handled I/O bus write from 2 threads at once (2 vCPUs): CPU = each write's cost (the "
        "shared lock and the device's shared_ptr count bounce between cores), wall = "
        "aggregate time per write",
    "BM_GuestMemory_ReadObj<uint32_t>": "GuestMemory::ReadObj<uint32_t>",
    "BM_GuestMemory_ReadObj<VirtqDesc>": "GuestMemory::ReadObj of a 16-byte virtqueue descriptor",
    "BM_GuestMemory_WriteObj<uint32_t>": "GuestMemory::WriteObj<uint32_t>",
    "BM_GuestMemory_WriteObj<VirtqDesc>": "GuestMemory::WriteObj of a 16-byte descriptor",
    "BM_GuestMemory_ReadObj_SecondRegion": "ReadObj<uint64_t> from the second of two RAM regions "
                                           "(above 4 GiB)",
    "BM_GuestMemory_Read/4096": "GuestMemory::Read of 4 KiB",
    "BM_GuestMemory_Read/65536": "GuestMemory::Read of 64 KiB",
    "BM_Serial_WriteThr_Discarded": "16550A THR write, output discarded (register logic + lock)",
    "BM_Serial_WriteThr_DevNull": "16550A THR write to /dev/null (adds the write(2) per byte)",
    "BM_Serial_ReadLsr": "16550A LSR read",
    "BM_Serial_ConsoleByteThroughBus": "one polled console byte through the I/O bus: LSR read + "
                                       "THR write",
}


def num(x, digits=None):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    return f"{x:,.{digits}f}"


def med(s, digits=None):
    return num(s["median"], digits) if s and s.get("median") is not None else "–"


def spread(s, digits=None):
    """'median (min–max, n=N)'."""
    if not s or s.get("median") is None:
        return "–"
    return f"{num(s['median'], digits)} ({num(s['min'], digits)}–{num(s['max'], digits)}, n={s['n']})"


def overlap(a, b):
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def slower_note(entries, rows_stats):
    """A sentence on where crosvm is slower, with whether the ranges of the samples overlap."""
    out = []
    for e, (c, q) in zip(entries, rows_stats):
        if not e["crosvm_slower"]:
            continue
        within = overlap(c, q) if c and q and c.get("min") is not None else False
        out.append(f"{e['metric']}: crosvm/QEMU = {e['ratio']:.2f}" +
                   (" (the two sets of samples overlap: within this machine's run-to-run spread)"
                    if within else ""))
    return out


def top_syscalls(counts, n=6, per=None):
    if not isinstance(counts, dict) or "skipped" in counts:
        return counts.get("skipped", "not measured") if isinstance(counts, dict) else "–"
    items = list(counts.items())[:n]
    if per:
        return ", ".join(f"{k} {v / per:.2f}" for k, v in items)
    return ", ".join(f"{k} {v}" for k, v in items)


def render(R, table_md, sandbox_md=""):
    m = R["machine"]
    rows = R["rows"]
    emulated = m["kvm_kind"] == "emulated"
    la = R["load_average"]
    L = []
    w = L.append

    w("# Benchmarks: crosvm in C++ next to QEMU")
    w("")
    w(f"Written by `make bench` (`scripts/bench.sh` → `bench/run_bench.py`) on {R['date']}; the "
      f"run took {R['duration_s'] / 60:.1f} min. Do not edit by hand: every run rewrites this "
      "file, and `bench/results.json` holds every raw sample behind it.")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| CPU (`lscpu` model name) | {m['cpu_model']} |")
    w(f"| cores | {m['cpus']} |")
    w(f"| memory | {m['memory_gib']} GiB |")
    w(f"| host kernel | {m['host_kernel']} |")
    kvm_text = ("**emulated** — a nested, paravirtual KVM (`kvm_pvm`) that runs every guest "
                "instruction through KVM's instruction emulator, about 2 million instructions "
                "per second (`../shared/HOST-KVM.md`)" if emulated else
                "hardware (Intel VT-x / AMD-V)")
    w(f"| KVM (`guest/host-kvm-kind.sh`) | {kvm_text} |")
    w(f"| QEMU | {m['qemu']} |")
    w(f"| crosvm | commit {m['crosvm_commit']}, `build/crosvm` (RelWithDebInfo: -O2 -g) |")
    k = R["kernel"]
    w(f"| guest kernel | Linux {guest_kernel_version(rows)} from `guest/build-kernel.sh` "
      f"(cache key {k['cache_key'][:12]}…), command line `{k['params']}` |")
    w(f"| load average (1/5/15 min) | start {fmt_load(la['start'])}, end {fmt_load(la['end'])} |")
    w("")
    for mr in R.get("merged_runs", []):
        w(f"Rows {', '.join(mr['rows'])} were measured again on {mr['date']} "
          f"({mr['duration_s'] / 60:.1f} min, crosvm commit {mr['crosvm_commit']}, load average "
          f"start {fmt_load(mr['load_average']['start'])}, end "
          f"{fmt_load(mr['load_average']['end'])}) and merged in (`run_bench.py --merge-rows`); "
          "the other rows are from the run above.")
        w("")
    w("The machine is shared with other engineers' builds and tests, so the figures are noisy. "
      "Each row runs crosvm and QEMU alternately (the order swaps every repetition) so both see "
      "the same background load, and reports medians; `results.json` has every sample and the "
      "load average at the start of each row.")
    w("")
    w("## Results")
    w("")
    w("`crosvm/QEMU` is the ratio of the medians; whether lower or higher is better is said on "
      "each line. QEMU runs as `" + " ".join(R["qemu_command"]) + " -kernel …`; crosvm as `" +
      " ".join(["build/crosvm"] + R["crosvm_command"][1:]) + " …`. Both get the same guest "
      f"image, {R['guest_mib']} MiB and one vCPU.")
    w("")
    w(table_md)
    w("")
    render_sandbox(w, R, sandbox_md)
    if emulated:
        w("**On this host, rows 1, 2, 3 (through a guest) and 6 are dominated by the instruction emulation of the "
          "nested KVM**, not by the VMMs: every guest instruction, and every exit, runs through "
          "KVM's emulator. They say how the two VMMs compare on this machine, not how fast "
          "either is on hardware KVM. Rows 3b, 5 and 7 and the micro-benchmarks do not depend "
          "on guest execution speed. Each row's section says which of its figures are which.")
        w("")
    render_l1(w, R)

    render_startup(w, R, emulated)
    render_exits(w, R, emulated)
    render_disk(w, R)
    w("### 4. virtio-net")
    w("")
    w("Not yet: crosvm has no virtio-net (`--host_ip`, `--tap-fd`, ... answer \"not supported "
      "yet\"), so there is nothing to compare. (`/dev/net/tun` exists here; `/dev/vhost-net` "
      "does not.)")
    w("")
    render_memory(w, R)
    render_boot(w, R, emulated)
    render_binary(w, R)
    render_micro(w, R)

    if R.get("errors"):
        w("## Rows that failed in this run")
        w("")
        for name, msg in R["errors"].items():
            w(f"- `{name}`: {msg}")
        w("")
    w("## Not done yet")
    w("")
    if "summary" not in R["rows"].get("disk", {}).get("guest", {"summary": 1}):
        w("- virtio-blk through a guest (row 3): "
          f"{R['rows']['disk']['guest'].get('state', 'no result')}.")
    w("- virtio-net (row 4): no virtio-net in crosvm.")
    if rows.get("exits", {}).get("pio_exits", {}).get("syscalls", {}).get("crosvm", {}).get(
            "skipped"):
        w("- System-call counts: `strace` is not installed (it is not in `scripts/deps.sh`); "
          "install it to get them.")
    w("")
    w("## Reproducing")
    w("")
    w("`make bench` (installs what is missing, builds, builds the guest kernel, runs everything, "
      "~10–15 min here, plus the section inside L1 where this host's KVM is emulated; "
      "`bash scripts/bench.sh --l1-only` reruns only that section, `--no-l1` skips it). `python3 bench/run_bench.py --rows startup exits` runs some rows only, "
      "`--quick` fewer repetitions; both write to `build/bench-work/` instead of `bench/`. "
      "`build/bench/crosvm_micro_bench` and `build/bench/crosvm_disk_bench --help` run alone.")
    w("")
    return "\n".join(L)


def render_sandbox(w, R, sandbox_md):
    """Sandbox on against off: the table and where the cost goes."""
    if not R.get("sandbox_table"):
        return
    rows = R["rows"]
    w("### Sandbox on against off (same run)")
    w("")
    w("crosvm's default, every virtio device in its own jailed process (`" +
      " ".join(["build/crosvm"] + R.get("crosvm_sandbox_command", ["", "run"])[1:]) +
      " …`), against `--disable-sandbox` (devices in the VMM process), interleaved with the "
      "QEMU runs in the same rows. The issue's goals: at most 5 % worse on I/O, at most 2 ms "
      "more start-up (✓ met, ✗ not met, by the medians).")
    w("")
    w(sandbox_md)
    w("")
    notes = []
    st = rows.get("startup", {})
    setup = st.get("sandbox_setup", {})
    if setup.get("devices"):
        notes.append(f"*Device set-up* (DeviceHost's DEBUG log, one run of `hello` with "
                     f"`CROSVM_LOG=debug`): {setup['summary']}; {num(setup['total_ms'])} ms in "
                     "all. Policy = reading and compiling the seccomp policy in crosvm; fork+jail "
                     "= forking the relay, the namespaces, uid map, pivot_root, closing fds, "
                     "until the device reports it is confined; proxy = the first request "
                     "(the device's BARs) over the channel.")
    sc = st.get("syscalls", {})
    on, off = sc.get("crosvm-sandbox", {}), sc.get("crosvm", {})
    if on and off and "skipped" not in on and "skipped" not in off:
        more = sorted(((k, on.get(k, 0) - off.get(k, 0)) for k in set(on) | set(off)),
                      key=lambda kv: -kv[1])
        more = [f"{k} +{d}" for k, d in more if d > 0][:8]
        notes.append(f"*System calls* (`strace -f -c`, one `hello` run, all processes): "
                     f"{sum(on.values()):,} with the sandbox, {sum(off.values()):,} without; "
                     f"the most added: {', '.join(more)}.")
    trips = []
    lx = rows.get("linux", {}).get("proxy_round_trips", {})
    if "round_trips" in lx:
        trips.append(f"{lx['round_trips']} in a whole Linux boot (to its panic after "
                     "`Run /init`)")
    dg = rows.get("disk", {}).get("guest", {}).get("proxy_round_trips", {})
    if "round_trips" in dg:
        trips.append(f"{dg['round_trips']} in a whole `virtio_blk_bench` run (PCI scan, "
                     "device set-up, ~150,000 requests)")
    if trips:
        notes.append("*Proxy round trips* (config-space and BAR accesses crossing the channel; "
                     "`strace -f --seccomp-bpf -e trace=sendmsg`, one request and one reply "
                     "each): " + "; ".join(trips) + ". The I/O path itself does not cross the "
                     "channel: queue notifications are ioeventfds and interrupts irqfds that KVM "
                     "signals directly, and the device reads guest memory through the same "
                     "shared memfd.")
    lr = rows.get("linux", {}).get("crosvm-sandbox", {})
    if lr.get("processes", {}).get("median"):
        notes.append(f"*Memory:* the sum covers {num(lr['processes']['median'], 0)} processes "
                     "(crosvm, then a relay and a device process per virtio device: "
                     "`crosvm:<device>`); each forked process has its own page tables, stack "
                     "and copy-on-write pages of crosvm's heap, and its share of guest RAM is "
                     "subtracted (the device maps the same guest memfd). Every process is in "
                     "`results.json` (`rows.linux.runs.crosvm-sandbox[].memory.per_process`).")
    notes.append("*Noise:* rows 3 and 6 are dominated by this host's instruction emulation and "
                 "the machine is shared; with few repetitions per variant (see each line's n) "
                 "their on/off ratios swing both ways between runs and do not settle the 5 % "
                 "goal. Row 1's set-up cost and row 5 are the load-independent figures. The "
                 "section inside L1 below is older than the sandbox rows unless it has its own "
                 "sandbox table.")
    for n in notes:
        w(n)
        w("")


def fmt_load(xs):
    return "/".join(f"{x:.2f}" for x in xs)


def guest_kernel_version(rows):
    for runs in rows.get("linux", {}).get("runs", {}).values():
        for r in runs:
            if r.get("kernel_version"):
                return r["kernel_version"]
    return "(not booted in this run)"


def entries_for(R, prefix):
    return [e for e in R["table"] if e["row"].startswith(prefix)]


# ---------------------------------------------------------------- inside L1 ----


L1_TITLE = "inside L1 (QEMU TCG emulating AMD SVM; kvm_amd)"


def render_l1(w, R):
    """The second table: the rows run inside the nested hardware-KVM host L1."""
    if "l1" not in R:
        return
    l1 = R["l1"]
    w(f"## Results {L1_TITLE}")
    w("")
    if "error" in l1:
        w(f"Not measured in this run: {l1['error']}")
        w("")
        return
    m = l1["machine"]
    up = l1.get("l1_up") or {}
    up_text = (f"L1 boots to its init in {num(up['seconds'])} s (run-in-l1's \"L1 up\" line, "
               f"{up['vcpus']} vCPUs)" if up.get("seconds") is not None else
               "L1's boot time was not found in run-in-l1's output")
    w("The same test guests and guest kernel, crosvm and QEMU alternating as above, run inside "
      "`tests/nested/run-in-l1`: Debian's own kernel booted under QEMU's software emulator "
      "(TCG, `-cpu max`, which emulates AMD SVM with nested paging), where `/dev/kvm` is "
      f"`{m.get('kvm_module') or m['kvm_kind']}` — hardware-style KVM, so guest user space "
      "runs. The VMMs are this machine's own binaries, seen through a read-only 9p share of its "
      f"root; scratch files (disk images) live in L1's memory. {up_text}; the section took "
      f"{l1['duration_s'] / 60:.1f} min inside L1. L1: {m['cpus']} vCPUs "
      f"(`{m['cpu_model']}`), {m['memory_gib']} GiB, kernel {m['host_kernel']}. QEMU runs as `" +
      " ".join(l1["qemu_command"]) + " -kernel …` (virtio-blk on q35 as above); repetitions "
      "per VMM: " + ", ".join(f"{k} {v}" for k, v in l1.get("reps", {}).items()) + ".")
    w("")
    w(l1_table(l1["table"]))
    w("")
    if l1.get("sandbox_table"):
        w("Sandbox on against off inside L1 (crosvm's default against `--disable-sandbox`, "
          "interleaved in the same rows):")
        w("")
        w(sandbox_table(l1["sandbox_table"]))
        w("")
    w("*What TCG does to these figures:* L1's vCPUs are themselves emulated instruction by "
      "instruction by TCG on this 2-core machine, so every absolute figure here — start-up, "
      "exit round trips, boot time, I/O rates — is many times slower than on real hardware, "
      "and noisy under this machine's load. It is not the emulation of the kvm_pvm host above: "
      "the guest's own instructions run in L1's KVM under nested paging, and an exit that "
      "stays inside L1's KVM and an exit out to the VMM in L1's user space are both "
      "TCG-emulated code paths, slowed alike. So the absolute times do not carry over; the "
      "ratios crosvm/QEMU are what carry over to a hardware-KVM host, and this table is the "
      "project's only measurement of a guest reaching user space.")
    w("")
    slow = [f"{e['row']}, {e['metric']}: {e['ratio']:.2f}" for e in l1["table"]
            if e["crosvm_slower"]]
    if slow:
        w("*Where crosvm is slower inside L1* (crosvm/QEMU; every sample is in `results.json` "
          "under `l1`): " + "; ".join(slow) + ".")
        w("")
    boot = l1["rows"].get("boot", {})
    if "crosvm" in boot:
        c, q = boot["crosvm"], boot["qemu"]
        w(f"Boot to user space (the busybox initramfs; each run stopped at its first line), "
          "median (min–max): wall crosvm "
          f"{spread(c['init_s'])} s, QEMU {spread(q['init_s'])} s; guest clock at `Run /init` "
          f"crosvm {med(c['guest_clock_init_s'])} s, QEMU {med(q['guest_clock_init_s'])} s; "
          "wall before the guest's clock starts (VMM set-up, firmware, early kernel) crosvm "
          f"{med(c['before_guest_clock_s'])} s, QEMU {med(q['before_guest_clock_s'])} s. "
          "crosvm gets no `-p` (it adds `console=ttyS0 reboot=k panic=-1` itself); QEMU gets "
          f"`-append \"{l1['kernel']['params']}\"`.")
        fails = c["failed_runs"] + q["failed_runs"]
        if fails:
            w(f"{fails} boot(s) did not reach the mark; see `results.json` (`l1.rows.boot`).")
        w("")
        render_phase_diff(w, boot.get("phase_diff"), top=4)
    if l1.get("errors"):
        w("Rows that failed inside L1: " + "; ".join(f"`{k}`: {v}" for k, v in
                                                   l1["errors"].items()))
        w("")


def sandbox_table(table):
    """The sandbox on/off lines: crosvm's default (every virtio device in its own jailed
    process) against `--disable-sandbox`, from the same interleaved runs."""
    lines = ["| row | metric | sandbox on | sandbox off | on/off | on − off | better | goal | "
             "note |", "|---|---|---:|---:|---:|---:|---|---|---|"]
    for t in table:
        ratio = f"{t['ratio']:.3f}" if t["ratio"] is not None else "–"
        diff = f"{t['diff']:+,.2f}" if t.get("diff") is not None else "–"
        goal = t["goal"] + (" ✓" if t["meets_goal"] else " ✗" if t["meets_goal"] is False
                            else "") if t["goal"] else ""
        lines.append(f"| {t['row']} | {t['metric']} | {num(t['on'], t['digits'])} | "
                     f"{num(t['off'], t['digits'])} | {ratio} | {diff} | "
                     f"{t['better']} is better | {goal} | {t['note']} |")
    return "\n".join(lines)


def l1_table(table):
    lines = ["| row | metric | crosvm | QEMU | crosvm/QEMU | better | note |",
             "|---|---|---:|---:|---:|---|---|"]
    for t in table:
        ratio = f"{t['ratio']:.2f}" if t["ratio"] is not None else "–"
        lines.append(f"| {t['row']} | {t['metric']} | {num(t['crosvm'], t['digits'])} | "
                     f"{num(t['qemu'], t['digits'])} | {ratio} | {t['better']} is better | "
                     f"{t['note']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ rows ----


def render_startup(w, R, emulated):
    s = R["rows"].get("startup")
    if not s or "error" in s:
        return
    c, q = s["crosvm"], s["qemu"]
    n = c["wall_ms"]["n"]
    w("### 1. Start-up")
    w("")
    w(f"The `hello` test guest (prints what the loader handed over, then resets), {n} runs per "
      "VMM. Timed from just before the fork/exec of the VMM to the first byte the guest writes "
      "to COM1 (the first guest port write visible from outside: the first THR write) and to "
      "the reaped exit; CPU is user+sys of all the VMM's threads (`wait4` rusage). "
      "Median (min–max):")
    w("")
    w("| | crosvm | QEMU |")
    w("|---|---:|---:|")
    w(f"| to first console byte (ms) | {spread(c['first_output_ms'])} | "
      f"{spread(q['first_output_ms'])} |")
    w(f"| to exit, wall (ms) | {spread(c['wall_ms'])} | {spread(q['wall_ms'])} |")
    w(f"| CPU user / sys (ms) | {med(c['user_ms'])} / {med(c['sys_ms'])} | "
      f"{med(q['user_ms'])} / {med(q['sys_ms'])} |")
    w(f"| peak RSS (MiB) | {num(c['maxrss_kib']['median'] / 1024)} | "
      f"{num(q['maxrss_kib']['median'] / 1024)} |")
    w(f"| minor page faults | {med(c['minflt'])} | {med(q['minflt'])} |")
    w(f"| context switches | {med(c['ctxsw'])} | {med(q['ctxsw'])} |")
    sc = s.get("syscalls", {})
    w(f"| system calls, one run (`strace -f -c`), most frequent | "
      f"{top_syscalls(sc.get('crosvm', {}))} | {top_syscalls(sc.get('qemu', {}))} |")
    w("")
    nbytes = s["runs"]["crosvm"][0]["console_bytes"]
    exits = R["rows"].get("exits", {}).get("pio_exits", {}) if "error" not in R["rows"].get(
        "exits", {}) else {}
    exit_ns = exits.get("crosvm", {}).get("ns_per_exit", {}).get("median")
    if emulated:
        est = (f" — about {nbytes * 2 * exit_ns / 1e6:.0f} ms at row 2's "
               f"{exit_ns / 1000:.0f} µs per exit" if exit_ns else "")
        w(f"*Emulation:* the guest prints {nbytes} bytes, each one an LSR read and a THR write, "
          f"so about {2 * nbytes} port exits{est} — from the first byte to the exit the wall "
          "time is mostly the emulated exit path, the same for both VMMs. The time to the first "
          "byte is mostly VMM set-up and is less affected; QEMU's includes its `qboot` firmware "
          "(`bios-microvm.bin`), which runs in the emulator before the guest. The CPU figures "
          "include the vCPU thread's time inside KVM_RUN (emulation), so they are inflated the "
          "same way.")
        w("")
    sb = s.get("crosvm-sandbox")
    if sb:
        w(f"Sandbox on (`crosvm-sandbox`, the same runs interleaved): first console byte "
          f"{spread(sb['first_output_ms'])} ms, exit {spread(sb['wall_ms'])} ms, CPU user / sys "
          f"{med(sb['user_ms'])} / {med(sb['sys_ms'])} ms, context switches {med(sb['ctxsw'])}; "
          "system calls, one run (all processes): "
          f"{top_syscalls(sc.get('crosvm-sandbox', {}))}. See \"Sandbox on against off\".")
        w("")
    slow = slower_note(entries_for(R, "1. start-up (sandbox off)"),
                       [(c["first_output_ms"], q["first_output_ms"]), (c["wall_ms"], q["wall_ms"]),
                        (c["cpu_ms"], q["cpu_ms"])])
    if slow:
        w("*Where crosvm is slower:* " + "; ".join(slow) + ". The split above (user vs. sys "
          "CPU, page faults, context switches, system calls) is where its time goes: sys time "
          "is KVM set-up and KVM_RUN, user time is crosvm's own code.")
        w("")


def render_exits(w, R, emulated):
    ex = R["rows"].get("exits")
    if not ex or "error" in ex:
        return
    micro = R["rows"].get("micro", {}).get("benchmarks", {})
    w("### 2. Exit round trip")
    w("")
    w("The `pio_exits` and `mmio_exits` guests time 100000 one-byte `outb` to port 0x5e0 and "
      "100000 32-bit writes to 0xd8000000 (addresses neither VMM handles) with RDTSC and print "
      "ns per exit, using a TSC frequency measured against the PIT; the figure is the guest's "
      "own. It includes the guest's loop (measured separately without the access: \"loop "
      "alone\"). The CPU figure is the VMM process's user+sys time over the whole run divided "
      "by the exits (it includes start-up, ~1 % here); unlike the guest's wall-clock figure it "
      "does not grow while the vCPU thread waits for a CPU. Median (min–max):")
    w("")
    w("| | crosvm | QEMU |")
    w("|---|---:|---:|")
    for g, label in (("pio_exits", "port I/O"), ("mmio_exits", "MMIO")):
        c, q = ex[g]["crosvm"], ex[g]["qemu"]
        w(f"| {label}: ns per exit (guest RDTSC) | {spread(c['ns_per_exit'])} | "
          f"{spread(q['ns_per_exit'])} |")
        w(f"| {label}: loop alone, ns per iteration | {med(c['baseline_ns_per_iter'])} | "
          f"{med(q['baseline_ns_per_iter'])} |")
        w(f"| {label}: VMM CPU ns per exit, user / sys | {med(c['user_ns_per_exit'])} / "
          f"{med(c['sys_ns_per_exit'])} | {med(q['user_ns_per_exit'])} / "
          f"{med(q['sys_ns_per_exit'])} |")
        w(f"| {label}: context switches per exit | {med(c['ctxsw_per_exit'], 3)} | "
          f"{med(q['ctxsw_per_exit'], 3)} |")
        sc = ex[g].get("syscalls", {})
        w(f"| {label}: system calls per exit (10000-exit variant under `strace -f -c`) | "
          f"{top_syscalls(sc.get('crosvm', {}), 3, 10000)} | "
          f"{top_syscalls(sc.get('qemu', {}), 3, 10000)} |")
    w("")
    unh = micro.get("BM_BusWrite_Unhandled", {}).get("cpu", {}).get("median")
    munh = micro.get("BM_MmioBusWrite_Unhandled", {}).get("cpu", {}).get("median")
    c_ns = ex["pio_exits"]["crosvm"]["ns_per_exit"]["median"]
    if emulated:
        w("*Emulation:* these figures are almost entirely the nested KVM: the exit, the "
          "emulation of the `outb`/`mov` and the loop around it, and the return into the guest. "
          "crosvm's own part of a port exit — the bus lookup and the unhandled-access check — "
          + (f"costs {unh:.0f} ns (`BM_BusWrite_Unhandled`; MMIO {munh:.0f} ns), "
             f"{100 * unh / c_ns:.2f} % of the {c_ns / 1000:.1f} µs measured, "
             if unh and c_ns else "is a few tens of ns (micro-benchmarks below), ")
          + "and both VMMs make exactly one system call per exit (`ioctl(KVM_RUN)`). The loop "
          "alone costs microseconds per iteration because each of its instructions is emulated. "
          "On hardware KVM this row would compare the VMMs' exit paths; here it mainly measures "
          "the host.")
        w("")
    slow = []
    for g in ("pio_exits", "mmio_exits"):
        c, q = ex[g]["crosvm"], ex[g]["qemu"]
        for key, label in (("ns_per_exit", "ns per exit"), ("cpu_ns_per_exit", "CPU per exit")):
            if c[key]["median"] > q[key]["median"]:
                ratio = c[key]["median"] / q[key]["median"]
                within = overlap(c[key], q[key])
                slow.append(f"{g} {label}: {ratio:.2f}×" +
                            (" (samples overlap: within the run-to-run spread)" if within else ""))
    if slow:
        w("*Where crosvm is slower:* " + "; ".join(slow) + ". Where the time goes: both VMMs "
          "spend one `ioctl(KVM_RUN)` per exit and nothing else (system calls above); the "
          "per-exit CPU is almost all sys time, i.e. inside KVM_RUN (the host's exit and "
          "emulation path), and crosvm's user time per exit is the bus dispatch measured by the "
          "micro-benchmarks. Nothing in crosvm's user space accounts for a difference of this "
          "size, so it is the host (load, and where the vCPU thread runs); what would lower "
          "every VMM's figure is fewer user-space exits: `ioeventfd` for doorbell-style writes "
          "and coalesced MMIO/PIO for write-only registers, which the kernel completes without "
          "returning to the VMM.")
        w("")


def render_disk(w, R):
    d = R["rows"].get("disk")
    if not d or "error" in d:
        return
    t = d["tests"]
    w("### 3. virtio-blk")
    w("")
    state = ("crosvm has virtio-blk now (`--rwdisk` is accepted, and the `virtio_blk_read` "
             "test guest reads through it)" if d["virtio_blk_in_crosvm"] else
             "crosvm has no virtio-blk yet (`crosvm run --help`: `--rwdisk` "
             f"\"{d['crosvm_rwdisk_help']}\")")
    g = d.get("guest", {})
    if "summary" in g:
        w(f"Through a guest ({state}): the `virtio_blk_bench` test guest "
          "(`guest/testguests/virtio_blk_bench.c`, a polling virtio 1.x driver, queue size 256) "
          "boots under both VMMs with the image as its virtio-blk disk and times four phases with "
          "RDTSC: 1 MiB sequential reads, then writes, 4 passes over the first 128 MiB (one request in "
          "flight, one descriptor per MiB), and 4 KiB reads in the same \"random\" stream as 3b "
          "at QD1 and at QD32 (32 chains in flight; every completion refilled at once, one "
          "notify per poll round); every phase stops after 1 s of guest time. crosvm: "
          "`--rwdisk IMAGE`; QEMU: `-M q35` (microvm here has no PCI), `-drive "
          "file=IMAGE,format=FMT,if=none -device virtio-blk-pci,disable-legacy=on` with its "
          "default cache and AIO (`writeback`, `threads`). Medians of "
          f"{g['summary']['raw']['crosvm']['seq_read']['n']} runs per VMM, alternating (min–max):")
        w("")
        w("| test | crosvm raw | QEMU raw | crosvm qcow2 | QEMU qcow2 |")
        w("|---|---:|---:|---:|---:|")
        for key in ("seq_read", "seq_write", "rand_read_qd1", "rand_read_qd32"):
            w(f"| {t[key]['label']} | " + " | ".join(
                spread(g["summary"][f][v][key]) for f in ("raw", "qcow2")
                for v in ("crosvm", "qemu")) + " |")
        w("")
        w("**The 4 KiB figures are dominated by the instruction emulation of the nested KVM**: "
          "the guest's driver code (a few hundred instructions per request, ~0.5 µs each "
          "here) and the notify exit of every request cost far more than the 4 KiB copy, so "
          "they sit two orders of magnitude below the host's ceiling and the block layers "
          "(3b). The 1 MiB figures are partly so (the same fixed cost per request next to a "
          "1 MiB copy; few requests per run, so they are noisy). They compare the two VMMs' "
          "virtio-blk paths on this machine only.")
        w("")
        w("*Writes are durable in both*: the guest does not negotiate VIRTIO_BLK_F_FLUSH, so "
          "both devices are write-through and `strace -c -f` shows one `fdatasync` per "
          "1 MiB write under each VMM. (Before crosvm honoured that rule it completed writes "
          "from the page cache and looked 4.6x faster; the bug is fixed and this row is the "
          "honest comparison.) *Where crosvm is slower* (qcow2 writes, within the noise of "
          "3 runs): crosvm's qcow2 code issues one `pwrite` per 64 KiB cluster, 16 per 1 MiB "
          "request, where QEMU issues one; merging contiguous host clusters into one "
          "`pwritev` would fix it (3b shows the same effect without a guest).")
        w("")
        w("Also measured, on the same "
          f"{d['images']['size_mib']} MiB image of random data in the page cache "
          "(`build/bench-work/disk.raw`, and `disk.qcow2` made from it by `qemu-img convert`, "
          "64 KiB clusters, fully allocated):")
    else:
        w(f"Through a guest: **not yet** — {state}; {g.get('state', '')}. What is measured "
          f"now, on a {d['images']['size_mib']} MiB image of random data in the page cache "
          "(`build/bench-work/disk.raw`, and `disk.qcow2` made from it by `qemu-img convert`, "
          "64 KiB clusters, fully allocated):")
    w("")
    w("- the **host's ceiling**: `crosvm_disk_bench --backend host`, plain `pread`/`pwrite` on "
      "the raw file — no VMM can move data faster than this;")
    w("- **3b, the two block layers without a guest**: crosvm's `DiskFile` (`src/disk`, what "
      "its virtio-blk calls per request) in `crosvm_disk_bench --backend crosvm`, next to "
      "QEMU's block layer in `qemu-img bench -t writeback -i threads` (QEMU's default cache and "
      "AIO modes), with the same request stream: request *i* at offset *i·step* modulo the "
      "image size; sequential requests step by their size, \"random\" 4 KiB ones by 1013 "
      "blocks (prime: every block is visited). QD32 is 32 threads with one request each in "
      "`crosvm_disk_bench`, and 32 requests in flight in `qemu-img bench`.")
    w("")
    w("None of this runs guest code, so none of it depends on the emulating KVM. Medians of "
      f"{t['seq_read']['median']['host/raw']['n']} runs (min–max):")
    w("")
    cols = [("host/raw", "host ceiling (raw file)"), ("crosvm/raw", "crosvm raw"),
            ("qemu-img/raw", "QEMU raw"), ("crosvm/qcow2", "crosvm qcow2"),
            ("qemu-img/qcow2", "QEMU qcow2")]
    cols = [(k, h) for k, h in cols if k in t["seq_read"]["median"]]
    w("| test | " + " | ".join(h for _, h in cols) + " |")
    w("|---|" + "---:|" * len(cols))
    for key in ("seq_read", "seq_write", "rand_read_qd1", "rand_read_qd32"):
        w(f"| {t[key]['label']} | " +
          " | ".join(spread(t[key]['median'][k]) for k, _ in cols) + " |")
    w("")
    if not d.get("have_crosvm_disk"):
        w("crosvm's DiskFile columns are missing: `crosvm_disk_bench` was built without "
          "`src/disk`.")
        w("")
    w("At 4 KiB the per-request overhead decides: crosvm's `DiskFile` calls `pread` on the "
      "calling thread, while `qemu-img bench` with `-i threads` hands every request from a "
      "coroutine to a worker thread of QEMU's thread pool and back, which costs more than a "
      "page-cache copy. That is QEMU's default (`aio=threads`) for a virtio-blk disk too; a "
      "virtio-blk comparison through a guest will say how much of it survives next to the "
      "exit costs.")
    w("")
    sc = d.get("syscalls_per_request", {})
    if sc and not any("skipped" in v.get("crosvm", {}) for v in sc.values()):
        w("System calls per request, one run of each test under `strace -f -c` (all threads; "
          "start-up calls are spread over the requests, so fractions below 1 are mostly "
          "start-up):")
        w("")
        w("| test | crosvm, most frequent per request | QEMU (`qemu-img bench`) |")
        w("|---|---|---|")
        for case, v in sc.items():
            w(f"| {case} ({v['requests']} requests) | {top_syscalls(v.get('crosvm', {}), 4)} | "
              f"{top_syscalls(v.get('qemu-img', {}), 4)} |")
        w("")
    slow = []
    for key in ("seq_read", "seq_write", "rand_read_qd1", "rand_read_qd32"):
        for fmt in ("raw", "qcow2"):
            c = t[key]["median"].get(f"crosvm/{fmt}")
            q = t[key]["median"][f"qemu-img/{fmt}"]
            if c and c["median"] is not None and c["median"] < q["median"]:
                slow.append(f"{t[key]['label']}, {fmt}: {c['median'] / q['median']:.2f}×" +
                            (" (samples overlap: within the spread)" if overlap(c, q) else ""))
    if slow:
        w("*Where crosvm's layer is slower:* " + "; ".join(slow) + ". The system calls per "
          "request above are where its time goes: a request that the other layer serves with "
          "fewer, larger calls (for qcow2, one `pwritev`/`preadv` covering every contiguous "
          "cluster of a request instead of one call per cluster; metadata updates batched) "
          "is what would close the gap.")
        w("")
    def per_req(case, backend, call):
        v = sc.get(case, {}).get(backend)
        return v.get(call) if isinstance(v, dict) else None

    for case, call in (("seq_read/qcow2", "pread64"), ("seq_write/qcow2", "pwrite64")):
        cn, qn = per_req(case, "crosvm", call), per_req(case, "qemu-img", call)
        if cn and qn and cn >= 2 * qn:
            w(f"*qcow2, {case.split('/')[0].replace('_', ' ')}:* crosvm issues {cn:.0f} `{call}` "
              f"per 1 MiB request (one per 64 KiB cluster) where QEMU issues {qn:.0f}: merging "
              "the accesses to contiguous clusters into one call is the improvement for large "
              "requests.")
            w("")
    fx = per_req("rand_read_qd32/qcow2", "crosvm", "futex")
    if fx and fx >= 0.5:
        c32 = t["rand_read_qd32"]["median"].get("crosvm/qcow2", {}).get("median")
        r32 = t["rand_read_qd32"]["median"].get("crosvm/raw", {}).get("median")
        fr = per_req("rand_read_qd32/raw", "crosvm", "futex") or 0
        w(f"*qcow2 at QD32:* crosvm makes {fx:.1f} `futex` calls per request ({fr:.2f} on raw): "
          "the 32 threads wait for each other, consistent with `QcowFile` holding one mutex "
          "for a whole request, data `pread` included"
          + (f" ({num(c32)} IOPS against {num(r32)} on raw)" if c32 and r32 else "")
          + ". Holding it only for the cluster lookup would let the data reads run in "
          "parallel.")
        w("")


def render_memory(w, R):
    lx = R["rows"].get("linux")
    if not lx or "error" in lx:
        return
    c, q = lx["crosvm"], lx["qemu"]
    w("### 5. Memory overhead")
    w("")
    w(f"Both VMMs boot the project's Linux guest with {lx['guest_mib']} MiB (row 6's runs). "
      "The guest cannot stay up here (no guest user space runs on the emulating KVM; it "
      "panics right after `Run /init`), so the console stream is watched and, the moment the "
      "kernel prints `Run /init as init process`, the harness reads `/proc/PID/smaps_rollup` "
      "(RSS, PSS of the whole VMM process) and `/proc/PID/smaps` to find the guest's RAM: for "
      "crosvm the shared mapping of its guest memfd (`/memfd:crosvm_guest`), for QEMU the "
      f"anonymous mapping of exactly the `-m` size ({lx['guest_mib']} MiB). **VMM overhead = "
      "process RSS − the guest RAM mapping's resident pages** (and the same with PSS, which "
      "splits shared library pages among the processes that map them). Median (min–max):")
    w("")
    w("| MiB | crosvm | QEMU |")
    w("|---|---:|---:|")
    w(f"| overhead, RSS − guest RAM resident | {spread(c['overhead_rss_mib'])} | "
      f"{spread(q['overhead_rss_mib'])} |")
    w(f"| overhead, PSS − guest RAM PSS | {spread(c['overhead_pss_mib'])} | "
      f"{spread(q['overhead_pss_mib'])} |")
    w(f"| process RSS | {med(c['rss_mib'])} | {med(q['rss_mib'])} |")
    w(f"| process PSS | {med(c['pss_mib'])} | {med(q['pss_mib'])} |")
    w(f"| guest RAM resident | {med(c['guest_rss_mib'])} | {med(q['guest_rss_mib'])} |")
    w("")
    ex = [r for r in lx["runs"]["crosvm"] if r.get("memory")]
    eq = [r for r in lx["runs"]["qemu"] if r.get("memory")]
    if ex and eq:
        w(f"Guest RAM mappings found: crosvm `{ex[0]['memory']['guest_mappings'][0]}`; QEMU "
          f"`{eq[0]['memory']['guest_mappings'][0]}`. QEMU backs guest RAM with transparent "
          "huge pages (2 MiB), so its guest-resident figure is rounded up to 2 MiB units; "
          "crosvm's memfd is shmem, with 4 KiB pages here (`shmem_enabled` is `never`). "
          "Neither figure includes KVM's own kernel memory (page tables, vCPU state). PSS "
          "depends on what else runs: shared library pages are split with every other "
          "process that maps them (another QEMU on the machine halves QEMU's share).")
        w("")
    w("*Emulation:* does not enter the overhead figures; the guest kernel touches the same "
      "memory under both VMMs by the time it prints `Run /init`.")
    w("")


def render_boot(w, R, emulated):
    lx = R["rows"].get("linux")
    if not lx or "error" in lx:
        return
    c, q = lx["crosvm"], lx["qemu"]
    w("### 6. Linux boot")
    w("")
    w("The project's guest kernel (`vmlinux`, the tiny initramfs and the `PARAMS=` command line "
      "of `guest/build-kernel.sh`, identical for both) from process start to the console line "
      "`Run /init as init process`, one vCPU. crosvm enters the ELF's 64-bit entry directly; "
      "QEMU's microvm boots it through its PVH note with `qboot` first. At that line the "
      "harness also reads the vCPU thread's `/proc/PID/task/TID/schedstat`: time on a CPU, "
      "and time runnable but waiting for one. (Then the guest panics: crosvm exits through "
      "the i8042 reset; QEMU's microvm has no i8042, so the harness stops QEMU 5 s later.) "
      "Median (min–max):")
    w("")
    w("| s | crosvm | QEMU |")
    w("|---|---:|---:|")
    w(f"| wall, start → `Run /init` | {spread(c['init_s'])} | {spread(q['init_s'])} |")
    w(f"| vCPU thread on a CPU | {spread(c['vcpu_on_cpu_s'])} | {spread(q['vcpu_on_cpu_s'])} |")
    w(f"| vCPU thread runnable, waiting for a CPU | {spread(c['vcpu_runqueue_wait_s'])} | "
      f"{spread(q['vcpu_runqueue_wait_s'])} |")
    w(f"| other VMM threads, CPU | {med(c['vmm_threads_cpu_s'])} | "
      f"{med(q['vmm_threads_cpu_s'])} |")
    w(f"| guest clock at `Run /init` (printk time) | {med(c['guest_clock_init_s'])} | "
      f"{med(q['guest_clock_init_s'])} |")
    w(f"| wall − guest clock (VMM + firmware + kernel before its clock starts) | "
      f"{med(c['before_guest_clock_s'])} | {med(q['before_guest_clock_s'])} |")
    fails = c["failed_runs"] + q["failed_runs"]
    w("")
    if fails:
        w(f"{fails} run(s) did not reach `Run /init`; see `results.json` (console tails).")
        w("")
    if emulated:
        w("*Emulation:* this row is entirely the emulator: the vCPU thread is on a CPU for "
          "nearly all of the time it is not waiting for one, and that time is system time "
          "inside KVM_RUN (the VMMs' other threads use well under a second). The boot takes "
          "well under a second on hardware KVM; here it measures how many guest instructions "
          "each boot path executes and how long the vCPU thread waited behind other work on "
          "this 2-core machine. The run-queue wait is the noisy part: compare the on-CPU "
          "line for the VMMs, the wall line for what a user waits.")
        w("")
    pd = lx.get("phase_diff")
    render_phase_diff(w, pd)
    notes = []
    for key, label in (("init_s", "wall time"), ("vcpu_on_cpu_s", "vCPU on-CPU time")):
        if c[key]["median"] and q[key]["median"] and c[key]["median"] > q[key]["median"]:
            within = overlap(c[key], q[key])
            notes.append(f"{label} {c[key]['median'] / q[key]['median']:.2f}×" +
                         (" (samples overlap: within the spread)" if within else ""))
    if notes:
        wait_c, wait_q = c["vcpu_runqueue_wait_s"]["median"], q["vcpu_runqueue_wait_s"]["median"]
        text = ("*Where crosvm is slower:* " + "; ".join(notes) + ". The vCPU thread was "
                f"runnable but waiting for a CPU for {num(wait_c)} s (median; QEMU "
                f"{num(wait_q)} s): other work on the machine. crosvm's other threads used "
                f"{med(c['vmm_threads_cpu_s'])} s of CPU, so the rest is the guest's own "
                "instructions and exits in the emulator, and the table above says where the "
                "guest spends them differently.")
        pci = [e for e in (pd["top"] if pd else [])
               if e["diff_s"] > 0 and any("PCI" in t or "pci " in t for t in e["crosvm_only"])]
        if pci:
            text += (f" The stretch with {pci[0]['diff_s']:+.2f} s holds the PCI enumeration "
                     "that only crosvm's guest does: crosvm presents a PCI bus (with the "
                     "devices it adds by default), while QEMU's microvm as run here has none "
                     "(\"PCI: System does not support PCI\"). Every configuration-space access "
                     "is two port-I/O exits (address to 0xcf8, data at 0xcfc), each costing "
                     "row 2's microseconds on this host. What would shrink it: one exit per "
                     "access instead of two (PCIe ECAM, which Linux finds through an ACPI MCFG "
                     "table — crosvm has no ACPI yet), and no devices the user did not ask "
                     "for. On hardware KVM, where an exit is far cheaper, the same probing is "
                     "a negligible part of the boot. A like-for-like comparison would give "
                     "QEMU the same devices (`-M microvm,pcie=on` with the same virtio "
                     "devices on PCI).")
        else:
            text += (" What would lower it is fewer guest instructions and exits on the boot "
                     "path: the devices and tables the VMM presents (each one probed by the "
                     "guest through emulated exits), and the kernel configuration and command "
                     "line (`guest/`).")
        w(text)
        w("")


def render_phase_diff(w, pd, top=None):
    """The table of boot_phase_diff: where the two boots' guest time differs."""
    if not pd or not pd["top"]:
        return
    w(f"Where the guest's time differs, by the kernel's own clock: the console lines both "
      f"boots print are aligned and the time between consecutive ones compared "
      f"({pd['phases']} stretches, medians over the run pairs; a line printed at a "
      f"different place shows up as a +/− pair in neighbouring stretches). Sum of the "
      f"differences, crosvm − QEMU: {pd['sum_diff_s']:+.2f} s. The largest:")
    w("")
    w("| from → to (console lines) | crosvm s | QEMU s | diff s | only in crosvm's log | "
      "only in QEMU's log |")
    w("|---|---:|---:|---:|---|---|")
    for e in pd["top"][:top]:
        w(f"| `{md_cell(e['from'][:50])}` → `{md_cell(e['to'][:50])}` | "
          f"{num(e['crosvm_median_s'], 2)} | {num(e['qemu_median_s'], 2)} | "
          f"{e['diff_s']:+.2f} | {md_lines(e['crosvm_only'])} | {md_lines(e['qemu_only'])} |")
    w("")


def md_cell(text):
    return text.replace("|", "\\|").replace("`", "'")


def md_lines(lines):
    return "<br>".join(f"`{md_cell(t[:60])}`" for t in lines[:2]) + (" …" if len(lines) > 2
                                                                      else "") if lines else ""


def render_binary(w, R):
    b = R["rows"].get("binary")
    if not b or "error" in b:
        return
    c, q = b["crosvm"], b["qemu"]
    mib = 1 << 20
    w("### 7. Binary size")
    w("")
    w(f"crosvm: `build/crosvm` is {c['bytes_unstripped'] / mib:.2f} MiB with debug information "
      f"(RelWithDebInfo); `strip` of a copy: **{c['bytes_stripped'] / mib:.2f} MiB**. QEMU: "
      f"`{q['path']}` as installed ({q['package']}, "
      f"{'stripped' if q['installed_stripped'] else 'NOT stripped'}): "
      f"**{q['bytes_stripped'] / mib:.2f} MiB**, plus its firmware and ROM files, not counted.")
    w("")
    w(f"Shared libraries (`ldd`, without the vDSO): crosvm {len(c['libs'])} "
      f"({', '.join(c['libs'])}; {c['lib_bytes'] / mib:.1f} MiB of files); QEMU "
      f"{len(q['libs'])} ({q['lib_bytes'] / mib:.1f} MiB of files): {', '.join(q['libs'])}.")
    w("")


def render_micro(w, R):
    mc = R["rows"].get("micro")
    if not mc or "error" in mc:
        return
    w("## Micro-benchmarks (crosvm only, absolute)")
    w("")
    w("`build/bench/crosvm_micro_bench` (Google Benchmark, `bench/micro_benchmarks.cpp`), linked "
      "with the project's `crosvm_devices` and `crosvm_memory`: the in-process work of a vCPU "
      "exit once KVM_RUN has returned. No KVM is involved, so the emulating host does not "
      "enter into them. CPU time per operation (median of repetitions, min–max); wall time is "
      "higher when other work preempts the benchmark.")
    w("")
    w("| benchmark | what | CPU ns/op | wall ns/op |")
    w("|---|---|---:|---:|")
    for name, e in mc["benchmarks"].items():
        w(f"| `{name}` | {MICRO_DESCRIPTIONS.get(name, '')} | {spread(e['cpu'], 1)} | "
          f"{med(e['real'], 1)} |")
    w("")
