#!/usr/bin/env python3
"""Runs crosvm and QEMU side by side and writes bench/results.json and bench/RESULTS.md.

Called by scripts/bench.sh (`make bench`), which first installs what is missing and builds
crosvm, the test guests, the benchmark tools and the guest kernel. Python standard library only.

Rows (see RESULTS.md for what each one measures and how):
  1 start-up       the `hello` test guest: process start -> first guest console byte -> exit
  2 exits          port-I/O and MMIO exit round trips, from the pio_exits/mmio_exits guests
  3 virtio-blk     the virtio_blk_bench test guest on a raw and a qcow2 image (QEMU on q35); the
                   host's own ceiling on the image, and the block layers of both VMMs without a
                   guest (crosvm's DiskFile, `qemu-img bench`)
  4 virtio-net     not yet
  5 memory         RSS/PSS minus resident guest RAM at "Run /init", 256 MiB guest
  6 linux boot     the project's guest kernel to "Run /init as init process"
  7 binary         stripped size and linked shared libraries
  micro            Google Benchmark micro-benchmarks (absolute figures, no peer)

--in-l1 runs a second set of rows instead, meant to run inside the nested hardware-KVM host L1
(tests/nested/run-in-l1: QEMU's TCG emulating AMD SVM, kvm_amd inside), where guest user space
runs: start-up, exit round trips, virtio-blk through the guest, and the boot to the first line
of the busybox init ("crosvm-busybox-init: hello"). scripts/bench.sh runs it in L1 when this
host's KVM is emulated and hands its results.json to the host run with --l1-results.

Runs of the two VMMs are interleaved (the order alternates every repetition) so that both see
the same background load; medians are reported, every sample is kept in results.json.
"""

import argparse
import datetime
import difflib
import json
import os
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")

GUEST_MIB = 256
QEMU_BIN = "qemu-system-x86_64"
QEMU_MACHINE = "microvm,x-option-roms=off,rtc=on"
# Plain `-cpu host` aborts QEMU 7.2 on the nested KVM of the project's machines
# ("failed to set MSR 0x10a"); guest/testguests/run_qemu.sh uses the same override.
QEMU_CPU = os.environ.get("QEMU_CPU", "host,-arch-capabilities")
# Request stream shared by crosvm_disk_bench and `qemu-img bench`: a 4 KiB "random" read steps
# 1013 blocks (prime, so every block of the image is visited) from one request to the next.
DISK_IMAGE_MIB = 256
RANDOM_STEP = 1013 * 4096
INIT_MARK = b"Run /init as init process"
# The busybox initramfs's first user-space line (guest/init/busybox-init.sh).
USER_MARK = b"crosvm-busybox-init: hello"
# The rows --in-l1 runs, and their repetitions there (L1's vCPUs are emulated by TCG: every run
# is many times slower than on hardware, so fewer of them).
L1_ROWS = ("startup", "exits", "disk", "boot")
L1_REPS = {"startup": 6, "exits": 3, "disk": 3, "boot": 3}


# ----------------------------------------------------------------------------- helpers ----


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw).stdout


def summary(samples):
    """median/min/max of a list of numbers (None when there are none)."""
    xs = [x for x in samples if x is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def fmt_num(x, digits=None):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    return f"{x:,.{digits}f}"


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def interleaved(n, kinds):
    """Yields (rep, kind) pairs, the kinds in rotating order each repetition."""
    for rep in range(n):
        k = rep % len(kinds)
        for kind in kinds[k:] + kinds[:k]:
            yield rep, kind


# ----------------------------------------------------------------- running a VMM ----


def run_process(argv, timeout_s, marks=(), on_mark=None, kill_after_marks_s=None, env=None):
    """Runs argv with stdin on /dev/null and stdout/stderr piped, timing it.

    marks: byte strings to watch for on stdout (the guest console); on_mark(mark, pid) is called
    the moment each one first appears, while the process still runs. Returns a dict with the wall
    time, the time of the first stdout byte, each mark's time, the child's rusage (all threads),
    its exit status, and its output.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    out, err = bytearray(), bytearray()
    first_out = None
    mark_t = {}
    timed_out = False
    deadline = t0 + timeout_s
    open_pipes = 2
    while open_pipes:
        now = time.perf_counter()
        if kill_after_marks_s is not None and marks and len(mark_t) == len(marks):
            deadline = min(deadline, t0 + max(mark_t.values()) + kill_after_marks_s)
        if now >= deadline:
            timed_out = len(mark_t) < len(marks) or not marks
            proc.kill()
            break
        for key, _ in sel.select(timeout=deadline - now):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_pipes -= 1
                continue
            if key.data == "err":
                err += chunk
                continue
            t = time.perf_counter() - t0
            if first_out is None:
                first_out = t
            start = max(0, len(out) - max((len(m) for m in marks), default=0))
            out += chunk
            for m in marks:
                if m not in mark_t and out.find(m, start) >= 0:
                    mark_t[m] = t
                    if on_mark:
                        on_mark(m, proc.pid)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    return {
        "argv": argv,
        "wall_s": wall,
        "first_output_s": first_out,
        "marks_s": {m.decode(): t for m, t in mark_t.items()},
        "rc": proc.returncode,
        "timed_out": timed_out,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "maxrss_kib": ru.ru_maxrss,
        "minflt": ru.ru_minflt,
        "majflt": ru.ru_majflt,
        "nvcsw": ru.ru_nvcsw,
        "nivcsw": ru.ru_nivcsw,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
    }


class Vmm:
    """How to run a guest under one VMM: "crosvm" (sandbox off: `--disable-sandbox`, every device
    in the VMM process), "crosvm-sandbox" (the default: every virtio device in its own jailed
    process) or "qemu"."""

    def __init__(self, name, crosvm_bin):
        self.name = name
        self.crosvm_bin = crosvm_bin
        self.is_crosvm = name.startswith("crosvm")
        self.sandbox = name == "crosvm-sandbox"

    def crosvm_run(self):
        """crosvm run and the options every crosvm row shares."""
        return ([self.crosvm_bin, "run"] + ([] if self.sandbox else ["--disable-sandbox"]) +
                ["-m", str(GUEST_MIB), "-c", "1"])

    def testguest(self, elf):
        if self.is_crosvm:
            return self.crosvm_run() + [elf]
        return self._qemu() + ["-kernel", elf]

    def linux(self, kernel, initrd, params):
        """params: the guest command line; for crosvm None means none beyond its own
        "console=ttyS0 reboot=k panic=-1"."""
        if self.is_crosvm:
            return self.crosvm_run() + ["-i", initrd] + (["-p", params] if params else []) + [kernel]
        return self._qemu() + ["-kernel", kernel, "-initrd", initrd, "-append", params or ""]

    @staticmethod
    def _qemu():
        return [QEMU_BIN, "-enable-kvm", "-M", QEMU_MACHINE, "-cpu", QEMU_CPU, "-m", str(GUEST_MIB),
                "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                "-no-reboot"]


def check_guest_exit(run, what):
    if "TESTGUEST EXIT 0" not in run["stdout"]:
        tail = (run["stdout"][-400:] + run["stderr"][-400:]).strip()
        raise RuntimeError(f"{what}: no 'TESTGUEST EXIT 0' (rc {run['rc']}): {tail}")


# --------------------------------------------------------------- /proc sampling ----


def read_smaps(pid):
    """Mappings of pid: list of dicts with start, end, perms, path and the kB fields."""
    maps = []
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = head.match(line)
            if m:
                maps.append({"start": int(m.group(1), 16), "end": int(m.group(2), 16),
                             "perms": m.group(3), "path": m.group(4)})
                continue
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB" and maps:
                maps[-1][parts[0].rstrip(":")] = int(parts[1])
    return maps


def read_kib_fields(path):
    fields = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def guest_ram_mappings(vmm, maps):
    """The mappings that hold guest RAM.

    crosvm: its guest memfd, mapped as "/memfd:crosvm_guest". QEMU: the anonymous mapping of the
    -m size (QEMU may pad a RAM block by up to its alignment; a few MiB of slack are allowed).
    """
    if vmm.startswith("crosvm"):
        return [m for m in maps if "memfd:crosvm_guest" in m["path"]]
    want = GUEST_MIB * 1024
    cands = [m for m in maps if m["path"] == "" and want <= m.get("Size", 0) <= want + 4096]
    return sorted(cands, key=lambda m: m.get("Rss", 0), reverse=True)[:1]


def vcpu_task(run):
    """The vCPU thread of a sampled run: the thread that has been on a CPU the longest."""
    tasks = [t for t in run.get("tasks", []) if "on_cpu_s" in t]
    return max(tasks, key=lambda t: t["on_cpu_s"]) if tasks else None


def console_lines(path):
    """[(printk seconds, text)] of a guest console log."""
    lines = []
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"\[\s*([0-9]+\.[0-9]+)\] (.*)", line.rstrip())
            if m:
                lines.append((float(m.group(1)), m.group(2)))
    return lines


def boot_phase_diff(pairs, top=6):
    """Where two boots of the same kernel spend their guest time differently.

    pairs: [(crosvm console log, QEMU console log)]. The kernel's lines are aligned (numbers
    masked, so addresses and counts do not matter); the lines both logs have are anchors, and a
    phase is the stretch between two consecutive anchors, timed by the kernel's own printk
    clock. Returns the phases whose median duration differs most, with the lines only one of
    the two logs has inside them (what the guest did differently there).
    """
    def norm(text):
        return re.sub(r"0x[0-9a-f]+|[0-9a-f]{6,}|\d+", "#", text)

    phases = {}
    for c_path, q_path in pairs:
        c, q = console_lines(c_path), console_lines(q_path)
        sm = difflib.SequenceMatcher(a=[norm(t) for _, t in c], b=[norm(t) for _, t in q],
                                     autojunk=False)
        anchors = [(a + k, b + k) for a, b, n in sm.get_matching_blocks() for k in range(n)]
        for (a0, b0), (a1, b1) in zip(anchors, anchors[1:]):
            key = (norm(c[a0][1]), norm(c[a1][1]))
            e = phases.setdefault(key, {"from": c[a0][1][:80], "to": c[a1][1][:80],
                                        "crosvm_s": [], "qemu_s": [],
                                        "crosvm_only": [t[:80] for _, t in c[a0 + 1:a1]][:4],
                                        "qemu_only": [t[:80] for _, t in q[b0 + 1:b1]][:4]})
            e["crosvm_s"].append(c[a1][0] - c[a0][0])
            e["qemu_s"].append(q[b1][0] - q[b0][0])
    out = []
    for e in phases.values():
        if len(e["crosvm_s"]) != len(pairs):
            continue
        e["crosvm_median_s"] = statistics.median(e["crosvm_s"])
        e["qemu_median_s"] = statistics.median(e["qemu_s"])
        e["diff_s"] = e["crosvm_median_s"] - e["qemu_median_s"]
        out.append(e)
    out.sort(key=lambda e: -abs(e["diff_s"]))
    return {"phases": len(out), "sum_diff_s": sum(e["diff_s"] for e in out), "top": out[:top]}


def sample_memory(vmm, pid):
    rollup = read_kib_fields(f"/proc/{pid}/smaps_rollup")
    maps = read_smaps(pid)
    guest = guest_ram_mappings(vmm, maps)
    guest_rss = sum(m.get("Rss", 0) for m in guest)
    guest_pss = sum(m.get("Pss", 0) for m in guest)
    status = read_kib_fields(f"/proc/{pid}/status")
    return {
        "rss_kib": rollup.get("Rss"),
        "pss_kib": rollup.get("Pss"),
        "guest_rss_kib": guest_rss,
        "guest_pss_kib": guest_pss,
        "overhead_rss_kib": rollup.get("Rss", 0) - guest_rss,
        "overhead_pss_kib": rollup.get("Pss", 0) - guest_pss,
        "guest_mappings": [f"{m['start']:x}-{m['end']:x} {m['perms']} size={m.get('Size')}kB "
                           f"rss={m.get('Rss')}kB {m['path'] or '[anon]'}" for m in guest],
        "vm_hwm_kib": status.get("VmHWM"),
        "mappings": len(maps),
    }


def process_tree(pid):
    """pid and every process below it, [(pid, comm)], parents first: crosvm, the relay of each
    jailed device ("crosvm:blk0" etc., children of crosvm) and the device under each relay."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append((int(d), comm))
    with open(f"/proc/{pid}/comm") as f:
        out = [(pid, f.read().strip())]
    i = 0
    while i < len(out):
        out += sorted(children.get(out[i][0], []))
        i += 1
    return out


def sample_memory_tree(vmm, pid):
    """sample_memory summed over pid and all its descendants (the sandbox's device processes map
    the same guest memfd, so guest RAM is subtracted in each). PSS sums to the memory the
    process tree really costs; RSS counts shared pages once per process."""
    procs = []
    for p, comm in process_tree(pid):
        try:
            procs.append({"pid": p, "comm": comm, **sample_memory(vmm, p)})
        except (FileNotFoundError, ProcessLookupError):
            continue
    total = {k: sum(x[k] or 0 for x in procs) for k in
             ("rss_kib", "pss_kib", "guest_rss_kib", "guest_pss_kib", "overhead_rss_kib",
              "overhead_pss_kib")}
    main = procs[0] if procs else {}
    return {**total, "processes": len(procs), "guest_mappings": main.get("guest_mappings"),
            "vm_hwm_kib": main.get("vm_hwm_kib"), "mappings": main.get("mappings"),
            "per_process": [{k: x[k] for k in ("pid", "comm", "rss_kib", "pss_kib",
                                               "guest_pss_kib", "overhead_pss_kib")}
                            for x in procs]}


def sample_tasks(pid):
    """Per-thread CPU use so far: user, system and guest time (s), time on a CPU and time spent
    runnable but waiting for one (schedstat), context switches."""
    tick = os.sysconf("SC_CLK_TCK")
    tasks = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except FileNotFoundError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        rest = s[s.rindex(")") + 2:].split()  # rest[0] is field 3 (state)
        task = {"tid": int(tid), "comm": comm, "user_s": int(rest[11]) / tick,
                "sys_s": int(rest[12]) / tick, "guest_s": int(rest[40]) / tick}
        try:
            # schedstat: time on a CPU, time runnable but waiting for one (ns), timeslices
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, slices = (int(x) for x in f.read().split()[:3])
            task.update(on_cpu_s=on_cpu / 1e9, runqueue_wait_s=waiting / 1e9, timeslices=slices)
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
            for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                m = re.search(rf"^{key}:\s+(\d+)", status, re.M)
                task[key] = int(m.group(1)) if m else None
        except (FileNotFoundError, ValueError):
            pass
        tasks.append(task)
    return tasks


# -------------------------------------------------------------------------- rows ----


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.crosvm_bin = os.path.join(self.build, "crosvm")
        self.guests = os.path.join(self.build, "guest", "testguests")
        # Inside L1 the build directory is the host's, seen through a read-only 9p share under an
        # in-memory overlay: scratch files (disk images, consoles) go to L1's own /tmp instead.
        self.work = (os.path.join(tempfile.gettempdir(), "crosvm-bench-l1") if args.in_l1 else
                     os.path.join(self.build, "bench-work"))
        os.makedirs(self.work, exist_ok=True)
        # The peers of the crosvm/QEMU ratios (crosvm with the sandbox off), and for the rows
        # where the sandbox matters (start-up, virtio-blk, memory) crosvm with it on as well.
        self.vmms = [Vmm("crosvm", self.crosvm_bin), Vmm("qemu", None)]
        self.vmms_sandbox = [Vmm("crosvm", self.crosvm_bin),
                             Vmm("crosvm-sandbox", self.crosvm_bin), Vmm("qemu", None)]
        self.sandbox_table = []
        self.rows = {}
        self.table = []
        self.in_l1 = args.in_l1
        # Inside L1 the strace runs would only add minutes of TCG time; they are host figures.
        self.strace = None if self.in_l1 else shutil.which("strace")

    def reps(self, n, row=None):
        """n repetitions (row: inside L1, L1_REPS[row] instead); a third with --quick."""
        if self.in_l1 and row in L1_REPS:
            n = L1_REPS[row]
        if self.args.max_reps:
            n = min(n, self.args.max_reps)
        return max(1, n // 3) if self.args.quick else n

    def add(self, row, metric, crosvm, qemu, better, note="", unit_digits=None):
        """One line of the results table. crosvm/qemu: a summary dict or a string."""
        def median(x):
            return x["median"] if isinstance(x, dict) else None
        c, q = median(crosvm), median(qemu)
        ratio = c / q if c is not None and q not in (None, 0) else None
        self.table.append({
            "row": row, "metric": metric,
            "crosvm": c if c is not None else crosvm,
            "qemu": q if q is not None else qemu,
            "ratio": ratio, "better": better, "note": note, "digits": unit_digits,
            "crosvm_slower": (ratio is not None and
                              ((better == "lower" and ratio > 1) or
                               (better == "higher" and ratio < 1))),
        })

    def add_sandbox(self, row, metric, on, off, better, goal=None, note="", unit_digits=None):
        """One line of the sandbox on/off table. on/off: summary dicts. goal: ("ratio", 1.05)
        (on/off within 5 %) or ("diff", 2.0) (on - off at most 2 units)."""
        a = on["median"] if isinstance(on, dict) else None
        b = off["median"] if isinstance(off, dict) else None
        ratio = a / b if a is not None and b not in (None, 0) else None
        diff = a - b if a is not None and b is not None else None
        meets = None
        if goal and ratio is not None:
            kind, limit = goal
            cost = diff if kind == "diff" else (ratio if better == "lower" else 1 / ratio)
            meets = cost <= limit if kind == "diff" else cost <= limit
        self.sandbox_table.append({
            "row": row, "metric": metric, "on": a if a is not None else on,
            "off": b if b is not None else off, "ratio": ratio, "diff": diff, "better": better,
            "goal": (f"≤ +{goal[1]:g} ms" if goal and goal[0] == "diff" else
                     f"≤ {round((goal[1] - 1) * 100):g} % worse" if goal else ""),
            "meets_goal": meets, "note": note, "digits": unit_digits})

    # ---- 1. start-up
    def row_startup(self):
        n = self.reps(10, "startup")
        elf = os.path.join(self.guests, "hello.elf")
        samples = {v.name: [] for v in self.vmms_sandbox}
        log(f"row 1: start-up, hello guest, {n} runs per VMM (crosvm sandbox off and on)")
        for _, v in interleaved(n, self.vmms_sandbox):
            r = run_process(v.testguest(elf), 60)
            check_guest_exit(r, f"{v.name} hello")
            samples[v.name].append(r)
        res = {"guest": elf, "runs": {}}
        for name, runs in samples.items():
            res["runs"][name] = [{**{k: r[k] for k in ("wall_s", "first_output_s", "user_s",
                                                        "sys_s", "cpu_s", "maxrss_kib", "minflt",
                                                        "nvcsw", "nivcsw", "rc")},
                                  "console_bytes": len(r["stdout"])} for r in runs]
            res[name] = {
                "first_output_ms": summary([r["first_output_s"] * 1e3 for r in runs]),
                "wall_ms": summary([r["wall_s"] * 1e3 for r in runs]),
                "cpu_ms": summary([r["cpu_s"] * 1e3 for r in runs]),
                "user_ms": summary([r["user_s"] * 1e3 for r in runs]),
                "sys_ms": summary([r["sys_s"] * 1e3 for r in runs]),
                "maxrss_kib": summary([r["maxrss_kib"] for r in runs]),
                "minflt": summary([r["minflt"] for r in runs]),
                "ctxsw": summary([r["nvcsw"] + r["nivcsw"] for r in runs]),
            }
        res["syscalls"] = self.strace_counts(lambda v: v.testguest(elf), self.vmms_sandbox)
        res["sandbox_setup"] = self.sandbox_setup(Vmm("crosvm-sandbox", self.crosvm_bin)
                                                  .testguest(elf))
        self.rows["startup"] = res
        c, q, s = res["crosvm"], res["qemu"], res["crosvm-sandbox"]
        self.add("1. start-up (sandbox off)", "process start → first guest console byte (ms)",
                 c["first_output_ms"], q["first_output_ms"], "lower")
        self.add("1. start-up (sandbox off)", "process start → exit, wall (ms)",
                 c["wall_ms"], q["wall_ms"], "lower")
        self.add("1. start-up (sandbox off)", "process start → exit, CPU user+sys (ms)",
                 c["cpu_ms"], q["cpu_ms"], "lower")
        setup = res["sandbox_setup"]
        where = (f"device set-up in crosvm (DEBUG log, one run): "
                 f"{setup['summary']}" if setup.get("devices") else "")
        self.add_sandbox("1. start-up", "process start → first guest console byte (ms)",
                         s["first_output_ms"], c["first_output_ms"], "lower", ("diff", 2.0),
                         where)
        self.add_sandbox("1. start-up", "process start → exit, wall (ms)", s["wall_ms"],
                         c["wall_ms"], "lower", ("diff", 2.0))
        self.add_sandbox("1. start-up", "process start → exit, CPU user+sys (ms)", s["cpu_ms"],
                         c["cpu_ms"], "lower", None,
                         "wait4 rusage: crosvm reaps each relay and each relay its device, so "
                         "the device processes' CPU is included")

    def sandbox_setup(self, argv):
        """One untimed run of argv with CROSVM_LOG=debug: what DeviceHost logs per sandboxed
        device ("<dev>: sandboxed in process N (...); set-up T ms: policy P ms, jail J ms")."""
        r = run_process(argv, 180, env={**os.environ, "CROSVM_LOG": "debug"})
        pat = re.compile(r"\] (.+?): sandboxed in process \d+ .*?set-up ([0-9.]+) ms: policy "
                         r"([0-9.]+) ms, jail ([0-9.]+) ms")
        devs = [{"device": m.group(1), "total_ms": float(m.group(2)),
                 "policy_ms": float(m.group(3)), "jail_ms": float(m.group(4))}
                for m in pat.finditer(r["stderr"])]
        text = "; ".join(f"{d['device']} {d['total_ms']:.1f} ms (policy {d['policy_ms']:.1f}, "
                         f"fork+jail {d['jail_ms']:.1f}, proxy "
                         f"{d['total_ms'] - d['policy_ms'] - d['jail_ms']:.1f})" for d in devs)
        return {"devices": devs, "summary": text,
                "total_ms": sum(d["total_ms"] for d in devs),
                "log_tail": "" if devs else r["stderr"][-600:]}

    # ---- 2. exits
    def row_exits(self):
        n = self.reps(7, "exits")
        res = {}
        pat = re.compile(r"TESTGUEST (\w+) count=(\d+) tsc_total=(\d+) tsc_per_exit=(\d+) "
                         r"baseline_tsc_per_iter=(\d+)(?: ns_per_exit=(\d+) total_ms=\d+ "
                         r"tsc_khz=(\d+))?")
        # Inside L1 an exit round trip costs a few hundred µs of TCG time: the 10000-exit builds of
        # the same guests keep a run to seconds there.
        variant = "_10k" if self.in_l1 else ""
        for guest in ("pio_exits", "mmio_exits"):
            elf = os.path.join(self.guests, f"{guest}{variant}.elf")
            log(f"row 2: {guest}{variant}, {n} runs per VMM")
            runs = {v.name: [] for v in self.vmms}
            for _, v in interleaved(n, self.vmms):
                r = run_process(v.testguest(elf), 180)
                check_guest_exit(r, f"{v.name} {guest}")
                m = pat.search(r["stdout"])
                if not m:
                    raise RuntimeError(f"{v.name} {guest}: no result line")
                count, tsc_per, base = int(m.group(2)), int(m.group(4)), int(m.group(5))
                khz = int(m.group(7)) if m.group(7) else None
                runs[v.name].append({
                    "ns_per_exit": int(m.group(6)) if m.group(6) else None,
                    "tsc_per_exit": tsc_per, "baseline_tsc_per_iter": base, "tsc_khz": khz,
                    "baseline_ns_per_iter": base * 1e6 / khz if khz else None,
                    "count": count, "wall_s": r["wall_s"], "user_s": r["user_s"],
                    "sys_s": r["sys_s"], "nvcsw": r["nvcsw"], "nivcsw": r["nivcsw"],
                })
            res[guest] = {"guest": elf, "runs": runs}
            for name, rs in runs.items():
                cnt = rs[0]["count"]
                res[guest][name] = {
                    "ns_per_exit": summary([r["ns_per_exit"] for r in rs]),
                    "baseline_ns_per_iter": summary([r["baseline_ns_per_iter"] for r in rs]),
                    "cpu_ns_per_exit": summary([(r["user_s"] + r["sys_s"]) * 1e9 / cnt
                                                for r in rs]),
                    "user_ns_per_exit": summary([r["user_s"] * 1e9 / cnt for r in rs]),
                    "sys_ns_per_exit": summary([r["sys_s"] * 1e9 / cnt for r in rs]),
                    "ctxsw_per_exit": summary([(r["nvcsw"] + r["nivcsw"]) / cnt for r in rs]),
                }
            res[guest]["syscalls"] = self.strace_counts(
                lambda v, g=guest: v.testguest(os.path.join(self.guests, f"{g}_10k.elf")))
        self.rows["exits"] = res
        for guest, label in (("pio_exits", "port-I/O write to no-op port 0x5e0"),
                             ("mmio_exits", "MMIO write to no-op 0xd8000000")):
            c, q = res[guest]["crosvm"], res[guest]["qemu"]
            self.add("2. exit round trip", f"{label} (ns/exit, guest RDTSC)",
                     c["ns_per_exit"], q["ns_per_exit"], "lower",
                     f"{res[guest]['runs']['crosvm'][0]['count']} exits per run; the guest's "
                     "loop alone: "
                     f"{fmt_num(c['baseline_ns_per_iter']['median'])} / "
                     f"{fmt_num(q['baseline_ns_per_iter']['median'])} ns per iteration")
            self.add("2. exit round trip", f"{label}: VMM process CPU time per exit (ns)",
                     c["cpu_ns_per_exit"], q["cpu_ns_per_exit"], "lower",
                     "user+sys of all threads (getrusage) / exits; not inflated by waiting for "
                     "a CPU")

    # ---- 3. virtio-blk
    def row_disk(self):
        n = self.reps(5)
        tool = os.path.join(self.build, "bench", "crosvm_disk_bench")
        help_text = sh([self.crosvm_bin, "run", "--help"], check=False)
        m = re.search(r"--rwdisk PATH\s*\n(.*?)(?=\n\s+-)", help_text, re.S)
        rwdisk_help = " ".join(m.group(1).split()) if m else "(no --rwdisk option)"
        virtio_blk_in_crosvm = m is not None and "not supported yet" not in m.group(1)
        res = {"crosvm_rwdisk_help": rwdisk_help, "virtio_blk_in_crosvm": virtio_blk_in_crosvm}

        raw, qcow = self.disk_images()
        have_crosvm_disk = subprocess.run(
            [tool, "--backend", "crosvm", "--file", raw, "--mode", "read", "--bs", "4K",
             "--count", "1"], capture_output=True).returncode == 0

        tests = [
            # key, label, mode, bs, count, step, depth, unit
            ("seq_read", "sequential read, 1 MiB requests (MB/s)", "read", 1 << 20, 1024, 0, 1,
             "mb_per_s"),
            ("seq_write", "sequential write, 1 MiB requests (MB/s)", "write", 1 << 20, 512, 0, 1,
             "mb_per_s"),
            ("rand_read_qd1", "4 KiB random read, QD1 (IOPS)", "read", 4096, 50000, RANDOM_STEP,
             1, "iops"),
            ("rand_read_qd32", "4 KiB random read, QD32 (IOPS)", "read", 4096, 100000,
             RANDOM_STEP, 32, "iops"),
        ]
        backends = [("host", "raw"), ("qemu-img", "raw"), ("qemu-img", "qcow2")]
        if have_crosvm_disk:
            backends[1:1] = [("crosvm", "raw")]
            backends.append(("crosvm", "qcow2"))

        def argv_of(backend, fmt, mode, bs, count, step, depth):
            path = raw if fmt == "raw" else qcow
            if backend == "qemu-img":
                argv = ["qemu-img", "bench", "-f", fmt, "-t", "writeback", "-i", "threads",
                        "-c", str(count), "-s", str(bs), "-d", str(depth)]
                if step:
                    argv += ["-S", str(step)]
                if mode == "write":
                    argv += ["-w", "--pattern=165"]
                return argv + [path]
            argv = [tool, "--backend", "host" if backend == "host" else "crosvm", "--file", path,
                    "--mode", mode, "--bs", str(bs), "--count", str(count), "--depth", str(depth)]
            if step:
                argv += ["--step", str(step)]
            return argv

        def run_one(backend, fmt, mode, bs, count, step, depth):
            out = sh(argv_of(backend, fmt, mode, bs, count, step, depth))
            if backend == "qemu-img":
                secs = float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
                return {"seconds": secs, "mb_per_s": bs * count / secs / 1e6,
                        "iops": count / secs}
            return json.loads(out)

        # Write the new images back now rather than during the measurements, then one untimed
        # round of every test and backend (page cache, page tables, CPU caches).
        os.sync()
        for key, _, mode, bs, count, step, depth, unit in tests:
            for b, f in backends:
                run_one(b, f, mode, bs, max(64, count // 4), step, depth)
        samples = {t[0]: {f"{b}/{f}": [] for b, f in backends} for t in tests}
        log(f"row 3: block I/O without a guest, {n} runs per backend and test")
        for rep in range(n):
            for key, _, mode, bs, count, step, depth, unit in tests:
                order = backends[rep % len(backends):] + backends[:rep % len(backends)]
                for b, f in order:
                    samples[key][f"{b}/{f}"].append(run_one(b, f, mode, bs, count, step, depth))
        res["tests"] = {}
        for key, label, mode, bs, count, step, depth, unit in tests:
            res["tests"][key] = {"label": label, "bs": bs, "count": count, "step": step or bs,
                                 "depth": depth, "unit": unit, "samples": samples[key],
                                 "median": {k: summary([s[unit] for s in v])
                                            for k, v in samples[key].items()}}
        # What each layer asks of the kernel per request: one run of every test under strace.
        res["syscalls_per_request"] = {}
        for key, label, mode, bs, count, step, depth, unit in tests:
            for fmt in ("raw", "qcow2"):
                n_req = max(64, count // 16)
                per = {}
                for b in ("crosvm", "qemu-img"):
                    if b == "crosvm" and not have_crosvm_disk:
                        continue
                    counts = self.strace_argv(argv_of(b, fmt, mode, bs, n_req, step, depth))
                    per[b] = ({k: round(v / n_req, 3) for k, v in counts.items()}
                              if "skipped" not in counts else counts)
                res["syscalls_per_request"][f"{key}/{fmt}"] = {"requests": n_req, **per}
        res["have_crosvm_disk"] = have_crosvm_disk
        res["images"] = {"raw": raw, "qcow2": qcow, "size_mib": DISK_IMAGE_MIB}
        self.rows["disk"] = res

        res["guest"] = self.disk_guest(raw, qcow) if virtio_blk_in_crosvm else {
            "state": "crosvm has no virtio-blk yet"}
        self.add_disk_guest_rows(res["guest"], {
            t[0]: (f"host ceiling on the raw file (pread/pwrite): "
                   f"{fmt_num(res['tests'][t[0]]['median']['host/raw']['median'])} "
                   f"{'MB/s' if t[-1] == 'mb_per_s' else 'IOPS'}") for t in tests})

        for fmt in ("raw", "qcow2"):
            for key, label, *_ in tests:
                med = res["tests"][key]["median"]
                c = med.get(f"crosvm/{fmt}", "not built (no src/disk)")
                self.add(f"3b. block layer, no guest ({fmt})", label, c, med[f"qemu-img/{fmt}"],
                         "higher", "crosvm DiskFile vs `qemu-img bench`; QD32: 32 threads vs "
                         "QEMU's AIO thread pool" if key == "rand_read_qd32" else
                         "crosvm DiskFile vs `qemu-img bench`")

    def disk_images(self):
        """A DISK_IMAGE_MIB MiB raw image of random bytes and its qcow2 copy, in the page cache."""
        raw = os.path.join(self.work, "disk.raw")
        qcow = os.path.join(self.work, "disk.qcow2")
        log(f"row 3: preparing a {DISK_IMAGE_MIB} MiB raw image and its qcow2 copy in {self.work}")
        with open(raw, "wb") as f:
            for _ in range(DISK_IMAGE_MIB):
                f.write(os.urandom(1 << 20))
        if os.path.exists(qcow):
            os.unlink(qcow)
        sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow])
        for path in (raw, qcow):  # into the page cache
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass
        return raw, qcow

    DISK_GUEST_TESTS = (("seq_read", "sequential read, 1 MiB requests (MB/s)", "mb_per_s"),
                        ("seq_write", "sequential write, 1 MiB requests (MB/s)", "mb_per_s"),
                        ("rand_read_qd1", "4 KiB random read, QD1 (IOPS)", "iops"),
                        ("rand_read_qd32", "4 KiB random read, QD32 (IOPS)", "iops"))

    def add_disk_guest_rows(self, g, extra_note):
        """The table lines of row 3 through a guest; extra_note: {test key: text to append}."""
        if "summary" in g:
            rt = g.get("proxy_round_trips", {})
            rt_note = (f"; {rt['round_trips']} proxy round trips in a whole run (strace)"
                       if "round_trips" in rt else "")
            for key, label, unit in self.DISK_GUEST_TESTS:
                for fmt in ("raw", "qcow2"):
                    self.add_sandbox("3. virtio-blk (guest)", f"{label}, {fmt}",
                                     g["summary"][fmt]["crosvm-sandbox"][key],
                                     g["summary"][fmt]["crosvm"][key], "higher", ("ratio", 1.05),
                                     f"median of {g['summary'][fmt]['crosvm'][key]['n']}; the "
                                     f"request path is eventfds and the shared guest memory, "
                                     f"no proxy call{rt_note}")
        for key, label, unit in self.DISK_GUEST_TESTS:
            tail = f"; {extra_note[key]}" if extra_note.get(key) else ""
            if "summary" not in g:
                self.add("3. virtio-blk (guest)", f"{label}, raw and qcow2", "not yet", "not yet",
                         "higher", f"{g.get('state', 'no result')}{tail}")
                continue
            for fmt in ("raw", "qcow2"):
                c, q = g["summary"][fmt]["crosvm"][key], g["summary"][fmt]["qemu"][key]
                if self.in_l1:
                    emu = "L1's vCPU and the exit per request are TCG-emulated"
                else:
                    emu = ("dominated by instruction emulation (guest driver code and one exit "
                           "per request)" if unit == "iops" else "partly instruction emulation "
                           "(fixed guest code and exit per request)")
                self.add("3. virtio-blk (guest)", f"{label}, {fmt}", c, q, "higher",
                         f"`virtio_blk_bench` guest, RDTSC, median of {c['n']}; {emu}{tail}")

    def row_disk_guest(self):
        """Row 3 through a guest only (inside L1: the block layers without a guest are host
        figures, measured by row_disk on the host)."""
        self.rows["disk"] = {"guest": self.disk_guest(*self.disk_images())}
        self.add_disk_guest_rows(self.rows["disk"]["guest"], {})

    # Keys of the virtio_blk_bench guest's phases -> the keys of the `tests` above.
    DISK_GUEST_PHASES = {"seq_read_1m": "seq_read", "seq_write_1m": "seq_write",
                         "rand_read_4k_qd1": "rand_read_qd1", "rand_read_4k_qd32": "rand_read_qd32"}

    def disk_guest_argv(self, vmm, elf, path, fmt):
        """virtio_blk_bench under one VMM with `path` as its virtio-blk disk. QEMU runs it on q35
        (microvm has no PCI bus here), with its defaults for the disk (cache=writeback,
        aio=threads), modern-only virtio-pci like crosvm's."""
        if vmm.is_crosvm:
            return vmm.crosvm_run() + ["--rwdisk", path, elf]
        return [QEMU_BIN, "-enable-kvm", "-M", "q35", "-cpu", QEMU_CPU, "-m", str(GUEST_MIB),
                "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                "-no-reboot", "-drive", f"file={path},format={fmt},if=none,id=d0",
                "-device", "virtio-blk-pci,drive=d0,disable-legacy=on", "-kernel", elf]

    def disk_guest(self, raw, qcow):
        """Row 3 through a guest: the virtio_blk_bench test guest, crosvm and QEMU alternating,
        on the raw image and on its qcow2 copy (both in the page cache)."""
        elf = os.path.join(self.guests, "virtio_blk_bench.elf")
        if not os.path.exists(elf):
            return {"state": "no virtio_blk_bench test guest built"}
        n = self.reps(3, "disk")
        pat = re.compile(r"TESTGUEST blk (\w+) mbps=(\d+)\.(\d) kiops=(\d+)\.(\d) reqs=(\d+) "
                         r"bytes=(\d+) tsc=(\d+) tsc_per_req=(\d+) ns_per_req=(\d+) tsc_khz=(\d+)")
        out = {"guest": elf, "runs": {}, "summary": {}, "qemu_machine": "q35"}
        for fmt, path in (("raw", raw), ("qcow2", qcow)):
            log(f"row 3: virtio_blk_bench guest on the {fmt} image, {n} runs per VMM")
            runs = {v.name: [] for v in self.vmms_sandbox}
            for _, v in interleaved(n, self.vmms_sandbox):
                r = run_process(self.disk_guest_argv(v, elf, path, fmt), 180)
                check_guest_exit(r, f"{v.name} virtio_blk_bench ({fmt})")
                phases = {}
                for m in pat.finditer(r["stdout"]):
                    ticks, khz = int(m.group(8)), int(m.group(11))
                    reqs, nbytes = int(m.group(6)), int(m.group(7))
                    secs = ticks / (khz * 1e3) if khz else None
                    phases[self.DISK_GUEST_PHASES.get(m.group(1), m.group(1))] = {
                        "reqs": reqs, "bytes": nbytes, "tsc": ticks, "tsc_khz": khz,
                        "seconds": secs,
                        "mb_per_s": nbytes / secs / 1e6 if secs else None,
                        "iops": reqs / secs if secs else None,
                        "ns_per_req": int(m.group(10)),
                    }
                if len(phases) < len(self.DISK_GUEST_PHASES):
                    raise RuntimeError(f"{v.name} virtio_blk_bench ({fmt}): missing result lines")
                runs[v.name].append({"phases": phases, "wall_s": r["wall_s"],
                                     "user_s": r["user_s"], "sys_s": r["sys_s"]})
            out["runs"][fmt] = runs
            out["summary"][fmt] = {
                name: {key: summary([rr["phases"][key]["mb_per_s" if key.startswith("seq")
                                                          else "iops"] for rr in rs])
                       for key in self.DISK_GUEST_PHASES.values()}
                for name, rs in runs.items()}
        out["proxy_round_trips"] = self.proxy_round_trips(
            self.disk_guest_argv(Vmm("crosvm-sandbox", self.crosvm_bin), elf, raw, "raw"), 300)
        return out

    def proxy_round_trips(self, argv, timeout_s, marks=(), kill_after_marks_s=None):
        """Channel messages between crosvm and its device processes in one run of argv (sandbox
        on): strace counts sendmsg only (--seccomp-bpf: the other calls run untraced); each
        config-space or BAR access the proxy forwards is one request and one reply."""
        if not self.strace or self.args.quick:
            return {"skipped": "no strace" if not self.strace else "--quick"}
        with tempfile.NamedTemporaryFile(suffix=".strace") as tf:
            r = run_process(["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=sendmsg",
                             "-e", "signal=none", "-o", tf.name] + argv, timeout_s,
                            marks=marks, kill_after_marks_s=kill_after_marks_s)
            calls = [line for line in open(tf.name, errors="replace") if "sendmsg(" in line]
        return {"sendmsg_calls": len(calls), "round_trips": len(calls) // 2,
                "rc": r["rc"], "wall_s": r["wall_s"]}

    # ---- 4. virtio-net
    def row_net(self):
        self.rows["net"] = {"state": "not yet: no virtio-net"}
        self.add("4. virtio-net", "—", "not yet: no virtio-net", "not measured", "higher")

    # ---- 5 and 6: the Linux guest (one set of boots serves both rows)
    def row_linux(self):
        g = self.guest
        res = self.linux_boots(self.reps(3), INIT_MARK, g["INITRD"], lambda v: g["PARAMS"],
                               "row 5+6", "~30-60 s each on an emulating host", 400,
                               after_mark_s=5)
        # crosvm exits by itself after the guest's panic, so strace needs no kill here.
        res["proxy_round_trips"] = self.proxy_round_trips(
            Vmm("crosvm-sandbox", self.crosvm_bin).linux(g["KERNEL"], g["INITRD"], g["PARAMS"]),
            400)
        self.rows["linux"] = res
        self.add_linux_rows(res, "Run /init", "\"Run /init as init process\"", "6. Linux boot")

    def row_boot_userspace(self):
        """The project's guest kernel with the busybox initramfs to its first user-space line;
        each run ends at the mark. crosvm gets no -p (it adds "console=ttyS0 reboot=k panic=-1"
        itself); QEMU gets the same line, which is this (hardware-KVM) host's PARAMS."""
        g = self.guest
        res = self.linux_boots(self.reps(3, "boot"), USER_MARK, g["BUSYBOX_INITRD"],
                               lambda v: None if v.is_crosvm else g["PARAMS"], "row 6",
                               "busybox initramfs", 180, after_mark_s=0)
        self.rows["boot"] = res
        self.add_linux_rows(res, "the first user-space line", f"\"{USER_MARK.decode()}\"",
                            "6. boot to user space")

    def linux_boots(self, n, mark, initrd, params_of, what, expect, timeout_s, after_mark_s):
        """n boots per VMM (interleaved) of the project's guest kernel with initrd until the
        console shows `mark`, sampling memory and per-thread CPU the moment it appears; each
        run is stopped after_mark_s later. "init_s" in the results is the mark's time."""
        g = self.guest
        log(f"{what}: Linux boots to '{mark.decode()}', {n} per VMM ({expect})")
        runs = {v.name: [] for v in self.vmms_sandbox}
        stamp = re.compile(rb"\[\s*([0-9]+\.[0-9]+)\] Run /init as init process")
        for rep, v in interleaved(n, self.vmms_sandbox):
            sampled = {}

            def on_mark(mark, pid, v=v, sampled=sampled):
                try:
                    sampled["memory"] = sample_memory_tree(v.name, pid)
                    sampled["tasks"] = sample_tasks(pid)
                except (FileNotFoundError, ProcessLookupError) as e:
                    sampled["error"] = str(e)

            # On an emulating host the guest panics right after "Run /init"; QEMU's microvm has
            # no i8042 for the reboot=k that follows, so it is stopped after_mark_s after the
            # mark (crosvm exits by itself).
            r = run_process(v.linux(g["KERNEL"], initrd, params_of(v)), timeout_s,
                            marks=(mark,), on_mark=on_mark, kill_after_marks_s=after_mark_s)
            kind = "user" if mark == USER_MARK else "init"
            console = os.path.join(self.work, f"console-{kind}-{v.name}-{rep + 1}.log")
            with open(console, "w") as f:
                f.write(r["stdout"])
            t_init = r["marks_s"].get(mark.decode())
            ms = stamp.search(r["stdout"].encode())
            kver = re.search(r"Linux version (\S+)", r["stdout"])
            entry = {"init_s": t_init, "guest_clock_init_s": float(ms.group(1)) if ms else None,
                     "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "user_s": r["user_s"],
                     "sys_s": r["sys_s"], "rc": r["rc"], "timed_out": r["timed_out"],
                     "first_output_s": r["first_output_s"],
                     "kernel_version": kver.group(1) if kver else None, "console": console,
                     **sampled}
            if t_init is None:
                entry["console_tail"] = r["stdout"][-800:] + r["stderr"][-800:]
                log(f"  {v.name}: did NOT reach '{mark.decode()}' (rc {r['rc']})")
            else:
                log(f"  {v.name} run {rep + 1}: '{mark.decode()}' at {t_init:.1f} s")
            runs[v.name].append(entry)
        res = {"runs": runs, "guest_mib": GUEST_MIB}
        pairs = [(c["console"], q["console"]) for c, q in zip(runs["crosvm"], runs["qemu"])
                 if c["init_s"] is not None and q["init_s"] is not None]
        res["phase_diff"] = boot_phase_diff(pairs) if pairs else None
        for name, rs in runs.items():
            ok = [r for r in rs if r["init_s"] is not None]
            mem = [r["memory"] for r in ok if "memory" in r]
            res[name] = {
                "init_s": summary([r["init_s"] for r in ok]),
                "guest_clock_init_s": summary([r["guest_clock_init_s"] for r in ok]),
                "before_guest_clock_s": summary([r["init_s"] - r["guest_clock_init_s"]
                                                 for r in ok if r["guest_clock_init_s"]]),
                "failed_runs": len(rs) - len(ok),
                "rss_mib": summary([m["rss_kib"] / 1024 for m in mem]),
                "pss_mib": summary([m["pss_kib"] / 1024 for m in mem]),
                "guest_rss_mib": summary([m["guest_rss_kib"] / 1024 for m in mem]),
                "overhead_rss_mib": summary([m["overhead_rss_kib"] / 1024 for m in mem]),
                "overhead_pss_mib": summary([m["overhead_pss_kib"] / 1024 for m in mem]),
                "processes": summary([m.get("processes", 1) for m in mem]),
                "task_cpu_at_init": {k: summary([sum(t[k] for t in r["tasks"]) for r in ok
                                                 if "tasks" in r])
                                     for k in ("user_s", "sys_s", "guest_s")},
                "vcpu_on_cpu_s": summary([vcpu_task(r)["on_cpu_s"] for r in ok
                                          if vcpu_task(r)]),
                "vcpu_runqueue_wait_s": summary([vcpu_task(r)["runqueue_wait_s"] for r in ok
                                                 if vcpu_task(r)]),
                "vmm_threads_cpu_s": summary([sum(t["user_s"] + t["sys_s"] for t in r["tasks"]
                                                  if t is not vcpu_task(r)) for r in ok
                                              if vcpu_task(r)]),
            }
        return res

    def add_linux_rows(self, res, at, mark_text, boot_row):
        """Rows 5 and 6 from linux_boots' results; at: where memory was sampled."""
        c, q = res["crosvm"], res["qemu"]
        self.add("5. memory overhead", f"RSS − resident guest RAM at {at}, {GUEST_MIB} MiB "
                 "guest (MiB)", c["overhead_rss_mib"], q["overhead_rss_mib"], "lower")
        self.add("5. memory overhead", f"PSS − guest RAM PSS at {at} (MiB)",
                 c["overhead_pss_mib"], q["overhead_pss_mib"], "lower")
        self.add("5. memory overhead", "RSS, whole process (MiB; for reference)",
                 c["rss_mib"], q["rss_mib"], "lower",
                 f"guest RAM resident: crosvm {fmt_num(c['guest_rss_mib']['median'])}, "
                 f"QEMU {fmt_num(q['guest_rss_mib']['median'])} MiB")
        self.add(boot_row, f"process start → {mark_text}, wall (s)",
                 c["init_s"], q["init_s"], "lower",
                 "same vmlinux, initrd and command line; vCPU thread waited for a CPU "
                 f"{fmt_num(c['vcpu_runqueue_wait_s']['median'])} / "
                 f"{fmt_num(q['vcpu_runqueue_wait_s']['median'])} s (schedstat)")
        self.add(boot_row, f"vCPU thread time on a CPU until {mark_text} (s)",
                 c["vcpu_on_cpu_s"], q["vcpu_on_cpu_s"], "lower",
                 "/proc/PID/task/TID/schedstat; the load-independent part of the wall time")
        sb = res["crosvm-sandbox"]
        self.add_sandbox("5. memory overhead", f"PSS − guest RAM PSS at {at}, summed over "
                         "crosvm and every descendant (MiB)", sb["overhead_pss_mib"],
                         c["overhead_pss_mib"], "lower", None,
                         f"processes: {fmt_num(sb['processes']['median'], 0)} with the sandbox "
                         f"(crosvm, a relay and a device per virtio device), "
                         f"{fmt_num(c['processes']['median'], 0)} without")
        self.add_sandbox("5. memory overhead", f"RSS − resident guest RAM at {at}, summed (MiB)",
                         sb["overhead_rss_mib"], c["overhead_rss_mib"], "lower", None,
                         "shared library pages count once per process here; PSS is the fair sum")
        rt = res.get("proxy_round_trips") or {}
        self.add_sandbox(boot_row, f"process start → {mark_text}, wall (s)", sb["init_s"],
                         c["init_s"], "lower", None,
                         (f"{rt['round_trips']} proxy round trips (config space, BARs) in one "
                          "whole boot (strace sendmsg / 2)" if "round_trips" in rt else ""))
        self.add_sandbox(boot_row, f"vCPU thread time on a CPU until {mark_text} (s)",
                         sb["vcpu_on_cpu_s"], c["vcpu_on_cpu_s"], "lower")

    # ---- 7. binary size
    def row_binary(self):
        stripped = os.path.join(self.work, "crosvm.stripped")
        sh(["strip", "-o", stripped, self.crosvm_bin])
        qemu = shutil.which(QEMU_BIN)

        def libs(path):
            out = sh(["ldd", path], check=False)
            names = []
            for line in out.splitlines():
                line = line.strip()
                if not line or line.startswith("linux-vdso"):
                    continue
                names.append(line.split()[0])
            sizes = 0
            for line in out.splitlines():
                m = re.search(r"=> (/\S+)", line) or re.match(r"\s*(/\S+)", line)
                if m and os.path.exists(m.group(1)):
                    sizes += os.path.getsize(os.path.realpath(m.group(1)))
            return names, sizes

        c_libs, c_lib_bytes = libs(self.crosvm_bin)
        q_libs, q_lib_bytes = libs(qemu)
        q_stripped = "stripped" in sh(["file", "-L", qemu])
        res = {
            "crosvm": {"path": self.crosvm_bin, "bytes_unstripped": os.path.getsize(self.crosvm_bin),
                       "bytes_stripped": os.path.getsize(stripped), "libs": c_libs,
                       "lib_bytes": c_lib_bytes},
            "qemu": {"path": qemu, "bytes_stripped": os.path.getsize(qemu),
                     "installed_stripped": q_stripped, "libs": q_libs, "lib_bytes": q_lib_bytes,
                     "package": sh(["dpkg-query", "-W", "qemu-system-x86"], check=False).strip()},
        }
        self.rows["binary"] = res
        mib = 1 << 20
        self.add("7. binary", "stripped executable (MiB)",
                 {"median": res["crosvm"]["bytes_stripped"] / mib},
                 {"median": res["qemu"]["bytes_stripped"] / mib}, "lower",
                 "QEMU as installed by Debian (stripped); crosvm: `strip` of build/crosvm")
        self.add("7. binary", "shared libraries linked (ldd, without the vDSO)",
                 {"median": len(c_libs)}, {"median": len(q_libs)}, "lower",
                 f"their files: crosvm {c_lib_bytes / mib:.1f} MiB, QEMU {q_lib_bytes / mib:.1f} MiB",
                 unit_digits=0)

    # ---- micro-benchmarks
    def micro(self):
        tool = os.path.join(self.build, "bench", "crosvm_micro_bench")
        reps = 3 if self.args.quick else 5
        log(f"micro-benchmarks: {reps} repetitions each")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run([tool, f"--benchmark_repetitions={reps}", "--benchmark_min_time=0.2",
                            "--benchmark_display_aggregates_only=true",
                            f"--benchmark_out={out.name}", "--benchmark_out_format=json"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            data = json.load(open(out.name))
        results = {}
        for b in data["benchmarks"]:
            name = b["run_name"]
            e = results.setdefault(name, {"cpu_ns": [], "real_ns": [], "unit": b["time_unit"]})
            if b.get("run_type") == "iteration":
                scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
                e["cpu_ns"].append(b["cpu_time"] * scale)
                e["real_ns"].append(b["real_time"] * scale)
        for e in results.values():
            e["cpu"] = summary(e["cpu_ns"])
            e["real"] = summary(e["real_ns"])
        self.rows["micro"] = {"context": data.get("context", {}), "benchmarks": results}

    # ---- diagnostics: which system calls each VMM makes (strace -c -f), outside the timed runs
    def strace_counts(self, argv_of, vmms=None):
        """{vmm: {syscall: calls}} for one run of argv_of(vmm) under each VMM."""
        return {v.name: self.strace_argv(argv_of(v)) for v in (vmms or self.vmms)}

    def strace_argv(self, argv):
        """{syscall: calls} of one run of argv under `strace -f -c` (all threads)."""
        if not self.strace or self.args.quick:
            return {"skipped": "not run inside L1" if self.in_l1 else
                    "strace is not installed (it is not in scripts/deps.sh)"
                    if not self.strace else "--quick"}
        with tempfile.NamedTemporaryFile(suffix=".strace") as tf:
            run_process(["strace", "-f", "-c", "-o", tf.name] + argv, 300)
            counts = {}
            for line in open(tf.name):
                parts = line.split()
                # "% time  seconds  usecs/call  calls  [errors]  syscall"
                if (len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and
                        parts[-1] != "total"):
                    counts[parts[-1]] = int(parts[3])
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    # ---- the whole run
    def machine(self):
        lscpu = sh(["lscpu"])
        model = re.search(r"Model name:\s*(.+)", lscpu)
        mem = read_kib_fields("/proc/meminfo").get("MemTotal", 0)
        git = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).strip()
        dirty = sh(["git", "-C", ROOT, "status", "--porcelain"], check=False).strip()
        return {
            "cpu_model": model.group(1).strip() if model else "unknown",
            "cpus": os.cpu_count(),
            "memory_gib": round(mem / (1 << 20), 1),
            "host_kernel": os.uname().release,
            "kvm_kind": self.kind,
            "kvm_module": next((mod for mod in ("kvm_pvm", "kvm_amd", "kvm_intel")
                                if os.path.isdir(f"/sys/module/{mod}")), None),
            "qemu": sh([QEMU_BIN, "--version"]).splitlines()[0],
            "crosvm_commit": git + (" + uncommitted changes" if dirty else ""),
            "hostname": os.uname().nodename,
        }

    def run(self):
        t_start = time.time()
        self.kind = sh(["bash", os.path.join(ROOT, "guest", "host-kvm-kind.sh")]).strip()
        self.guest = dict(line.split("=", 1) for line in
                          sh(["bash", os.path.join(ROOT, "guest", "build-kernel.sh")]).splitlines()
                          if "=" in line)
        load_start = loadavg()
        log(f"host KVM: {self.kind}; load average at start: {load_start}")
        rows = self.args.rows
        if self.in_l1:
            steps = [("startup", self.row_startup), ("exits", self.row_exits),
                     ("disk", self.row_disk_guest), ("boot", self.row_boot_userspace)]
        else:
            steps = [("startup", self.row_startup), ("exits", self.row_exits),
                     ("disk", self.row_disk), ("diskguest", self.row_disk_guest),
                     ("net", self.row_net), ("linux", self.row_linux),
                     ("binary", self.row_binary), ("micro", self.micro)]
        load_per_row = {}
        self.errors = {}
        for name, fn in steps:
            # diskguest: row 3 through the guest only (a subset of disk), when asked for.
            if (rows and name not in rows) or (name == "diskguest" and not self.in_l1 and
                                                 "diskguest" not in (rows or [])):
                continue
            load_per_row[name] = loadavg()
            try:
                fn()
            except (RuntimeError, OSError, subprocess.CalledProcessError, KeyError,
                    ValueError) as e:
                # One broken row (a VMM that no longer boots a guest, a tool that fails) must
                # not lose the others: it is reported, and make bench fails at the end.
                msg = f"{type(e).__name__}: {e}"
                if isinstance(e, subprocess.CalledProcessError):
                    msg += f" (stderr: {(e.stderr or '').strip()[-500:]})"
                log(f"row '{name}' FAILED: {msg}")
                self.errors[name] = msg
                self.rows[name] = {"error": msg}
        load_end = loadavg()
        kernel = self.guest.get("KERNEL", "")
        self.results = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.time() - t_start, 1),
            "machine": self.machine(),
            "load_average": {"start": load_start, "end": load_end, "at_row_start": load_per_row,
                             "note": "1, 5 and 15 minute load averages (os.getloadavg)"},
            "kernel": {"vmlinux": kernel, "initrd": self.guest.get("INITRD"),
                       "params": self.guest.get("PARAMS"),
                       "vmlinux_bytes": os.path.getsize(kernel) if os.path.exists(kernel) else None,
                       "cache_key": os.path.basename(os.path.dirname(kernel))},
            "guest_mib": GUEST_MIB,
            "qemu_command": Vmm._qemu(),
            "crosvm_command": Vmm("crosvm", self.crosvm_bin).crosvm_run(),
            "crosvm_sandbox_command": Vmm("crosvm-sandbox", self.crosvm_bin).crosvm_run(),
            "table": self.table,
            "sandbox_table": self.sandbox_table,
            "rows": self.rows,
            "errors": self.errors,
        }
        if self.in_l1:
            self.results["in_l1"] = True
            self.results["reps"] = {k: self.reps(0, k) for k in L1_REPS}
        return self.results


# ---------------------------------------------------------------------- reporting ----


def table_markdown(table):
    lines = ["| row | metric | crosvm | QEMU | crosvm/QEMU | better | note |",
             "|---|---|---:|---:|---:|---|---|"]
    for t in table:
        ratio = f"{t['ratio']:.2f}" if t["ratio"] is not None else "–"
        lines.append(f"| {t['row']} | {t['metric']} | {fmt_num(t['crosvm'], t['digits'])} | "
                     f"{fmt_num(t['qemu'], t['digits'])} | {ratio} | {t['better']} is better | "
                     f"{t['note']} |")
    return "\n".join(lines)


# Table lines each partial row run replaces when merged (--merge-rows).
ROW_TABLE_PREFIXES = {"startup": ("1. start-up",), "diskguest": ("3. virtio-blk (guest)",),
                      "disk": ("3. virtio-blk (guest)", "3b. block layer"),
                      "linux": ("5. memory overhead", "6. Linux boot")}


def merge_rows(results, part):
    """Puts the rows of a partial run (--rows ...) into a full run's results: its rows, its table
    lines and its sandbox lines replace the same rows' ones; the rest is kept."""
    done = list(part["rows"])
    asked = [r for r in ROW_TABLE_PREFIXES if r in done or
             (r == "diskguest" and "disk" in done and "tests" not in part["rows"]["disk"])]
    if "diskguest" in asked and "disk" in asked:
        asked.remove("disk")
    prefixes = tuple(p for r in asked for p in ROW_TABLE_PREFIXES[r])
    for name, row in part["rows"].items():
        if name == "disk" and "diskguest" in asked:
            results["rows"].setdefault("disk", {})["guest"] = row["guest"]
        else:
            results["rows"][name] = row
    old, new = results["table"], part["table"]
    first = next((i for i, t in enumerate(old) if t["row"].startswith(prefixes)), len(old))
    kept = [t for t in old if not t["row"].startswith(prefixes)]
    results["table"] = kept[:first] + new + kept[first:]
    results["sandbox_table"] = ([t for t in results.get("sandbox_table", [])
                                 if not t["row"].startswith(prefixes)] + part["sandbox_table"])
    results["sandbox_table"].sort(key=lambda t: t["row"][:2])
    for k in ("crosvm_command", "crosvm_sandbox_command"):
        results[k] = part[k]
    results.setdefault("merged_runs", []).append(
        {"rows": asked, "date": part["date"], "duration_s": part["duration_s"],
         "load_average": part["load_average"], "crosvm_commit": part["machine"]["crosvm_commit"],
         })
    return results


def report_module():
    import report  # bench/report.py
    return report


def load_l1(path, log_path):
    """The results.json of the rows run inside L1 (run_bench.py --in-l1), with L1's own boot
    time from run-in-l1's output ("run-in-l1: L1 up in X s"); {"error": ...} when there is none."""
    l1_up = None
    if log_path and os.path.exists(log_path):
        text = open(log_path, errors="replace").read()
        m = re.search(r"run-in-l1: L1 up in ([0-9.]+) s \((\d+) vCPUs", text)
        if m:
            l1_up = {"seconds": float(m.group(1)), "vcpus": int(m.group(2))}
        tail = text[-1500:]
    else:
        tail = "(no log)"
    if not os.path.exists(path):
        return {"error": f"no results from L1 ({path} is missing); the end of its log: {tail}",
                "l1_up": l1_up}
    with open(path) as f:
        r = json.load(f)
    r["l1_up"] = l1_up
    return r


def write_results(results, out_dir):
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    import report  # bench/report.py: RESULTS.md
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(report.render(results, table_markdown(results["table"]),
                              report.sandbox_table(results.get("sandbox_table", []))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the build directory")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions, no strace runs (for trying the harness; the results "
                         "are not written to bench/ unless --out is given)")
    ap.add_argument("--max-reps", type=int, default=None,
                    help="at most this many repetitions per VMM in every row (a shorter run on "
                         "a loaded machine)")
    ap.add_argument("--rows", nargs="*", help="only these: startup exits disk net linux binary "
                                              "micro (diskguest: row 3 through a guest only)")
    ap.add_argument("--out", default=None, help="directory for results.json and RESULTS.md "
                                                "(default: bench/, or build/bench-work/ with "
                                                "--quick or --rows)")
    ap.add_argument("--in-l1", action="store_true",
                    help="run the rows meant for the nested hardware-KVM host L1 (startup exits "
                         "disk boot; --rows picks among them) and write only --out/results.json")
    ap.add_argument("--l1-results", help="results.json of an --in-l1 run, reported as the "
                                         "section measured inside L1")
    ap.add_argument("--l1-log", help="run-in-l1's output for that run (for L1's boot time)")
    ap.add_argument("--merge-l1", action="store_true",
                    help="run nothing on this host: put --l1-results into the existing "
                         "--out/results.json (default bench/) and rewrite its RESULTS.md")
    ap.add_argument("--merge-rows", nargs="+", metavar="DIR",
                    help="run nothing: put the rows of these partial runs (--rows ... --out DIR) "
                         "into the existing --out/results.json (default bench/), replacing the "
                         "same rows, and rewrite its RESULTS.md")
    args = ap.parse_args()
    out_dir = args.out or (os.path.join(args.build, "bench-work") if args.quick or args.rows
                           else BENCH_DIR)
    os.makedirs(out_dir, exist_ok=True)

    if args.merge_l1:
        if not args.l1_results:
            ap.error("--merge-l1 needs --l1-results")
        with open(os.path.join(out_dir, "results.json")) as f:
            results = json.load(f)
        results["l1"] = load_l1(args.l1_results, args.l1_log)
        results.setdefault("errors", {}).pop("l1", None)
        if "error" in results["l1"]:
            results["errors"]["l1"] = results["l1"]["error"]
        write_results(results, out_dir)
        print(f"merged {args.l1_results} into {os.path.join(out_dir, 'results.json')}")
        sys.exit(1 if "error" in results["l1"] else 0)

    if args.merge_rows:
        with open(os.path.join(out_dir, "results.json")) as f:
            results = json.load(f)
        for d in args.merge_rows:
            with open(os.path.join(d, "results.json")) as f:
                results = merge_rows(results, json.load(f))
        write_results(results, out_dir)
        print(f"merged {' '.join(args.merge_rows)} into {os.path.join(out_dir, 'results.json')}")
        sys.exit(0)

    bench = Bench(args)
    results = bench.run()
    if args.in_l1:
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        print(table_markdown(results["table"]))
        print(report_module().sandbox_table(results["sandbox_table"]))
        print(f"took {results['duration_s']} s; wrote {os.path.join(out_dir, 'results.json')}")
        sys.exit(1 if results["errors"] else 0)
    if args.l1_results:
        results["l1"] = load_l1(args.l1_results, args.l1_log)
        if "error" in results["l1"]:
            results["errors"]["l1"] = results["l1"]["error"]
    write_results(results, out_dir)
    print(table_markdown(results["table"]))
    print()
    print(report_module().sandbox_table(results["sandbox_table"]))
    print()
    print(f"load average: start {results['load_average']['start']}, "
          f"end {results['load_average']['end']}; took {results['duration_s']} s")
    print(f"wrote {os.path.relpath(os.path.join(out_dir, 'results.json'), ROOT)} and "
          f"{os.path.relpath(os.path.join(out_dir, 'RESULTS.md'), ROOT)}")
    if results["errors"]:
        for name, msg in results["errors"].items():
            print(f"FAILED row {name}: {msg}")
        sys.exit(1)


if __name__ == "__main__":
    sys.dont_write_bytecode = True  # no __pycache__ in bench/
    sys.path.insert(0, BENCH_DIR)
    main()
