#!/usr/bin/env python3
"""Writes the seed corpora of the binary-input fuzzers into fuzz/corpus/<target>/ (committed):
loader_fuzz (small ELF and bzImage kernels), virtqueue_fuzz and virtio_blk_fuzz (guest memory
with rings, chains and requests laid out as the fuzzers expect), pci_config_fuzz (operation
sequences: BAR sizing, BAR programming and moves, virtio setup through BAR0). qcow_fuzz's seeds
come from fuzz/make_qcow_corpus.sh (qemu-img). Deterministic: rerunning rewrites the same files.
Usage: fuzz/make_corpus.py [OUT_DIR]   (default: fuzz/corpus next to this script)"""
import os
import struct
import sys

OUT_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def put(target, name, data):
    d = os.path.join(OUT_DIR, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


# ---- loader_fuzz: kernel images ------------------------------------------------------------

def elf(entry, segments):
    """segments: (paddr, vaddr, data, memsz, type)."""
    phoff = 64
    off = phoff + 56 * len(segments)
    ph = b""
    body = b""
    for paddr, vaddr, data, memsz, ptype in segments:
        ph += struct.pack("<IIQQQQQQ", ptype, 7, off + len(body), vaddr, paddr, len(data), memsz,
                          0x1000)
        body += data
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, 64, 56, len(segments), 64,
                      0, 0)
    return eh + ph + body


code = bytes([0xf4, 0xeb, 0xfd]) + bytes(13)  # hlt; jmp .-1
put("loader", "elf_one", elf(0x100000, [(0x100000, 0x100000, code, 0x1000, 1)]))
put("loader", "elf_virt_entry_bss",
    elf(0xffffffff81000000, [(0x100000, 0xffffffff81000000, code * 4, 0x20000, 1),
                             (0x200000, 0xffffffff81100000, b"\x11" * 32, 0x1000, 1),
                             (0, 0, b"", 0, 4)]))
put("loader", "elf_high_region", elf(0x1000000, [(0x1000000, 0x1000000, code, 0x800, 1)]))
put("loader", "elf_overlap",
    elf(0x100000, [(0x100000, 0x100000, code, 0x2000, 1), (0x101000, 0x101000, code, 16, 1)]))


def bzimage(payload, setup_sects=1, init_size=0x10000, version=0x020f, xloadflags=1,
            loadflags=1, cmdline_size=2047, initrd_max=0x7fffffff, syssize=None):
    setup = bytearray(((setup_sects or 4) + 1) * 512)  # 0 means 4
    struct.pack_into("<B", setup, 0x1f1, setup_sects)
    if syssize is None:
        syssize = (len(payload) + 15) // 16
    struct.pack_into("<I", setup, 0x1f4, syssize)
    struct.pack_into("<H", setup, 0x1fe, 0xaa55)
    setup[0x200] = 0xeb
    setup[0x201] = 0x6a  # the setup header ends at 0x26c
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x22c, initrd_max)
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + payload


kernel = bytes(0x200) + code * 8
put("loader", "bzimage", bzimage(kernel))
put("loader", "bzimage_sects0", bzimage(kernel, setup_sects=0, init_size=0x80000))
put("loader", "bzimage_tiny_initrd_max", bzimage(kernel, initrd_max=0x300000, cmdline_size=0))
put("loader", "bzimage_short_payload", bzimage(code, init_size=0))

# ---- virtqueue_fuzz / virtio_blk_fuzz: guest memory -----------------------------------------
DESC, AVAIL, USED = 0x0, 0x1000, 0x2000
NEXT, WRITE, INDIRECT = 1, 2, 4


class Mem:
    def __init__(self):
        self.b = bytearray(0x3000)

    def w(self, addr, data):
        if len(self.b) < addr + len(data):
            self.b.extend(bytes(addr + len(data) - len(self.b)))
        self.b[addr:addr + len(data)] = data

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        self.w(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, heads, used_event=None, qsize=None):
        self.w(AVAIL, struct.pack("<HH", 0, len(heads)))
        for i, h in enumerate(heads):
            self.w(AVAIL + 4 + 2 * i, struct.pack("<H", h))
        if used_event is not None:
            self.w(AVAIL + 4 + 2 * qsize, struct.pack("<H", used_event))


def vq(name, hdr, m):
    put("virtqueue", name, bytes(hdr) + bytes(m.b))


m = Mem()
m.desc(0, 0x3000, 64, NEXT, 1)
m.desc(1, 0x3100, 128, WRITE)
m.w(0x3000, b"hello virtqueue" * 4)
m.avail([0])
vq("one_chain", [4, 0, 0x42, 1], m)

m = Mem()
for i in range(8):
    m.desc(2 * i, 0x3000 + 0x100 * i, 32, NEXT, 2 * i + 1)
    m.desc(2 * i + 1, 0x4000 + 0x100 * i, 32, WRITE)
m.avail([2 * i for i in range(8)], used_event=3, qsize=16)
vq("eight_chains_event_idx", [4, 2, 7, 1], m)

m = Mem()
m.desc(0, 0x5000, 48, INDIRECT)
m.desc(0, 0x3000, 16, NEXT, 1, table=0x5000)
m.desc(1, 0x3100, 16, NEXT | WRITE, 2, table=0x5000)
m.desc(2, 0x3200, 16, WRITE, table=0x5000)
m.avail([0])
vq("indirect", [3, 1, 0, 0], m)

m = Mem()
m.desc(0, 0x3000, 16, NEXT, 1)
m.desc(1, 0x3000, 16, NEXT, 0)  # a loop
m.desc(2, 0xff000, 0x2000, WRITE)  # past the end of RAM, straddling the hole
m.avail([0, 2])
vq("loop_and_out_of_ram", [2, 1, 0, 0], m)

# Two regions: a buffer in the high one (0x20000 + 4 KiB); the input's bytes after the first
# 64 KiB land there.
# The input is as long as both regions together, so that libFuzzer's length limit (taken from
# the longest seed) lets mutations reach the high region's bytes.
m = Mem()
m.desc(0, 0x20000, 512, WRITE)
m.desc(1, 0x20ff0, 0x20, NEXT, 2)  # straddles the end of the high region
m.desc(2, 0xfff0, 0x20, 0)  # straddles the end of the low region
m.avail([0, 1])
m.w(0x10000 + 0x1000 - 16, b"end of high RAM.")
vq("high_region", [1, 0, 0, 0], m)


def blk(name, hdr, m):
    put("virtio_blk", name, bytes(hdr) + bytes(m.b))


def blk_req(m, slot, rtype, sector, data_len, data_write, base):
    """Three descriptors from 3*slot: header, data, status."""
    d = 3 * slot
    m.w(base, struct.pack("<IIQ", rtype, 0, sector))
    m.desc(d, base, 16, NEXT, d + 1)
    if data_len:
        m.desc(d + 1, base + 0x100, data_len, NEXT | (WRITE if data_write else 0), d + 2)
        m.desc(d + 2, base + 0x80, 1, WRITE)
    else:
        m.desc(d + 1, base + 0x80, 1, WRITE)
    return d


IN, OUT, FLUSH, GET_ID, DISCARD, WZ = 0, 1, 4, 8, 11, 13
m = Mem()
heads = [blk_req(m, 0, IN, 0, 512, True, 0x3000),
         blk_req(m, 1, OUT, 1, 512, False, 0x3400),
         blk_req(m, 2, FLUSH, 0, 0, False, 0x3800),
         blk_req(m, 3, GET_ID, 0, 20, True, 0x3c00)]
m.avail(heads)
blk("in_out_flush_id", [4, 0, 20, 0], m)

m = Mem()
m.w(0x3100, struct.pack("<QII", 1, 4, 0))  # discard / write-zeroes segment: sector, count, flags
heads = [blk_req(m, 0, DISCARD, 0, 16, False, 0x3000),
         blk_req(m, 1, WZ, 0, 16, False, 0x3000)]
m.avail(heads, used_event=1, qsize=16)
blk("discard_write_zeroes", [4, 2, 40, 0], m)

m = Mem()
m.w(0x3000, struct.pack("<IIQ", OUT, 0, 0))
m.desc(0, 0x6000, 48, INDIRECT)
m.desc(0, 0x3000, 16, NEXT, 1, table=0x6000)
m.desc(1, 0x3100, 1024, NEXT, 2, table=0x6000)
m.desc(2, 0x3080, 1, WRITE, table=0x6000)
m.avail([0])
blk("indirect_write_read_only", [3, 1, 30, 1], m)

m = Mem()
heads = [blk_req(m, 0, IN, 3, 1024, True, 0x3000)]  # past the end of a small disk
m.avail(heads)
blk("read_past_end", [2, 0, 10, 0], m)

# ---- pci_config_fuzz: operations -----------------------------------------------------------


def op(kind, which=0, reg=0, width=2, value=0, flags=0, raw_dev=None):
    dev_byte = which if raw_dev is None else 0x80 | (raw_dev << 1)
    return struct.pack("<BBBBI", kind, dev_byte, reg, (width & 3) | flags, value)


def pci(name, msix, ops):
    put("pci_config", name, bytes([msix]) + b"".join(ops))


# Enumerate through mechanism #1, size every BAR of device 0, program them, decode on, access.
ops = [op(1, raw_dev=d, reg=0) for d in range(4)]
for bar in range(6):
    ops.append(op(0, 0, 0x10 + 4 * bar, 2, 0xffffffff))
    ops.append(op(1, 0, 0x10 + 4 * bar, 2))
ops += [op(4, 0, 0, 2, 0xe0000000, 0x10), op(5, 0, 0, 2, 0x10), op(6, 0, 0, 2, 0x20),
        op(4, 0, 2, 2, 0xe0100000, 0x10), op(4, 0, 4, 2, 0x6000, 0x30),
        op(6, 0, 4, 2, 4, 0x40), op(4, 0, 0, 2, 0xe0200000, 0x10), op(6, 0, 0, 2, 0)]
pci("enumerate_size_program_move", 1, ops)

# Move device 0's BAR0 on top of the virtio BAR0, then away again.
ops = [op(4, 1, 0, 2, 0xe0000000, 0x10), op(4, 1, 1, 2, 0, 0x10),
       op(4, 0, 0, 2, 0xe0000000, 0x10), op(6, 0, 0, 2, 0), op(4, 0, 0, 2, 0xe8000000, 0x10),
       op(6, 1, 0, 2, 0x1000)]
pci("overlapping_bars", 0, ops)

# Virtio setup through BAR0: status, feature select, queue select/size/enable, MSI-X vectors.
ops = [op(4, 1, 0, 2, 0xe0000000, 0x10), op(4, 1, 1, 2, 0, 0x10)]
for reg, width, value in [(0x14, 0, 0), (0x14, 0, 1), (0x14, 0, 3), (0x08, 2, 1),
                          (0x0c, 2, 1), (0x14, 0, 11), (0x16, 1, 0), (0x18, 1, 16),
                          (0x1a, 1, 1), (0x10, 1, 0), (0x20, 2, 0x1000), (0x28, 2, 0x2000),
                          (0x30, 2, 0x3000), (0x1c, 1, 1), (0x14, 0, 15)]:
    ops.append(op(7, 1, reg, width, value))
ops += [op(7, 1, 0, 1, 0, 0x40), op(5, 1, 0, 2, 0x4000), op(6, 1, 0, 2, 0x6000),
        op(7, 1, 0x14, 0, 0)]
# Enable MSI-X in its capability (message control at cap+2) via direct writes.
ops += [op(2, 1, 0x40 + r, 2, 0xffffffff) for r in range(0, 0x40, 4)]
pci("virtio_setup", 1, ops)

# Odd accesses on the config ports: widths 1/2/8, offsets into 0xcf8, raw address registers.
ops = [op(0, 0, 0, 0, 0x80000004, 0x80 | (1 << 2)), op(1, 0, 0x3d, 0, 0, 3 << 2),
       op(1, 0, 0, 3, 0x80000000, 0x80), op(0, 0, 0x04, 1, 0x0007),
       op(2, 0, 0x3e, 2, 0xffffffff), op(3, 0, 0xfc, 2, 0, 0x40 | 0x1c)]
pci("config_port_widths", 0, ops)

# ---- control_request_fuzz: control socket messages (src/control/PROTOCOL.md) ------------------

def ctl(name, mtype, payload, version=1, magic=b"CVMC", length=None, req_id=7):
    n = len(payload) if length is None else length
    put("control_request", name, magic + struct.pack("<HHII", version, mtype, n, req_id) + payload)


for t, nm in [(1, "ping"), (2, "stop"), (3, "suspend"), (4, "resume"), (6, "balloon_stats")]:
    ctl(nm, t, b"")
ctl("balloon_set_target", 5, struct.pack("<Q", 1 << 30))
ctl("disk_resize", 7, struct.pack("<IQ", 1, 8 << 30))
ctl("bad_version", 1, b"", version=2)
ctl("unknown_type", 99, b"")
ctl("length_mismatch", 5, struct.pack("<Q", 1), length=4)
# Replies are fed to the reply decoder too: an OK balloon-stats reply with two entries.
put("control_request", "stats_reply",
    b"CVMC" + struct.pack("<HHII", 1, 0x8006, 8 + 20 + 20, 3) + struct.pack("<II", 0, 0) +
    struct.pack("<QQI", 4096, 0, 2) + struct.pack("<HQHQ", 0, 5, 4, 1 << 20))

print("seeds in " + OUT_DIR + ": " +
      ", ".join(f"{t} {len(os.listdir(os.path.join(OUT_DIR, t)))}" for t in sorted(os.listdir(OUT_DIR))))
