#!/usr/bin/env python3
"""Writes an uncompressed newc cpio archive (the initramfs format Linux reads) without root.

Usage: mkcpio.py OUT.cpio ENTRY...
  DEST=SRC       regular file DEST with the contents of SRC (mode 0755 if SRC is executable)
  DEST@TARGET    symbolic link (no ">" anywhere, so no shell can mistake an entry for a redirection)
  DEST/          directory
Parent directories are added; /dev/console (c 5 1), /proc, /sys, /tmp, /root, /mnt always exist.
Every entry is owned by root and has mtime 0, so the archive depends only on its inputs.
"""
import os
import stat
import sys


class Cpio:
    def __init__(self):
        self.out = bytearray()
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name = name.lstrip("/")
        if name in self.seen:
            raise SystemExit(f"mkcpio.py: {name} given twice")
        self.seen.add(name)
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.out += hdr + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name, mode=0o755):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.seen:
                self._entry(d, stat.S_IFDIR | mode)

    def parent(self, name):
        p = os.path.dirname(name.strip("/"))
        if p:
            self.dir(p)

    def file(self, name, src):
        with open(src, "rb") as f:
            data = f.read()
        mode = 0o755 if os.access(src, os.X_OK) else 0o644
        self.parent(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def link(self, name, target):
        self.parent(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def node(self, name, major, minor):
        self.parent(name)
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    c = Cpio()
    for d in ("dev", "proc", "sys", "root", "mnt"):
        c.dir(d)
    c.dir("tmp", 0o1777)
    c.node("dev/console", 5, 1)
    for e in argv[1:]:
        if "@" in e:
            dest, target = e.split("@", 1)
            c.link(dest, target)
        elif e.endswith("/"):
            c.dir(e)
        elif "=" in e:
            dest, src = e.split("=", 1)
            c.file(dest, src)
        else:
            raise SystemExit(f"mkcpio.py: cannot understand entry '{e}'")
    tmp = argv[0] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(c.finish())
    os.replace(tmp, argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
