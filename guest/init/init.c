//
// crosvm-init: the smallest useful /init for the crosvm-in-C++ test guest.
//
// Built freestanding against the kernel tree's nolibc by build-kernel.sh:
//   gcc -static -nostdlib -ffreestanding -fno-stack-protector -Os
//       -mgeneral-regs-only -include <linux>/tools/include/nolibc/nolibc.h
//       -I<linux>/tools/include/nolibc -isystem <linux>/usr/include
//       -o init init.c -lgcc
// so it has no #include of its own: nolibc.h provides everything, and the
// kernel's own exported headers (make headers) provide the uapi ones.
//
// What it does, each step reported on /dev/console as "crosvm-init: ...":
//   mount proc, sysfs and devtmpfs; print the kernel version, the number of
//   processors in /proc/cpuinfo, MemTotal from /proc/meminfo and every block
//   device under /sys/block with its size; then power the machine off.
//
// The final action can be chosen on the kernel command line with
//   crosvm_init=poweroff (default) | reboot | halt
// Without ACPI the kernel cannot power off (there is no pm_power_off), and
// LINUX_REBOOT_CMD_POWER_OFF ends in "reboot: System halted"; a VMM that ends
// the guest on an i8042 reset (reboot=k) wants crosvm_init=reboot.

#define TAG "crosvm-init: "

static char g_buf[16384];

static void put(const char *s) {
  size_t len = strlen(s);
  while (len > 0) {
    ssize_t n = write(1, s, len);
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

static void say(const char *a, const char *b, const char *c) {
  put(TAG);
  put(a);
  if (b) put(b);
  if (c) put(c);
  put("\n");
}

static void say_num(const char *what, unsigned long v, const char *unit) {
  put(TAG);
  put(what);
  put(utoa(v));
  if (unit) put(unit);
  put("\n");
}

static void say_err(const char *what, const char *arg) {
  put(TAG "error: ");
  put(what);
  if (arg) {
    put(" ");
    put(arg);
  }
  put(": errno ");
  put(itoa(errno));
  put("\n");
}

// Reads a whole (small) file into g_buf, NUL-terminated. Returns its length
// or -1.
static long slurp(const char *path) {
  int fd = open(path, O_RDONLY, 0);
  if (fd < 0) return -1;
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, g_buf + total, sizeof(g_buf) - 1 - total);
    if (n <= 0) break;
    total += (size_t)n;
    if (total == sizeof(g_buf) - 1) break;
  }
  close(fd);
  g_buf[total] = '\0';
  return (long)total;
}

// Strips trailing newlines / spaces in place.
static char *chomp(char *s) {
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ')) s[--len] = '\0';
  return s;
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void mount_one(const char *src, const char *dir, const char *type) {
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) say_err("mkdir", dir);
  if (mount(src, dir, type, 0, 0) < 0) {
    if (errno == EBUSY) return;  // already mounted (e.g. devtmpfs.mount=1)
    say_err("mount", dir);
    return;
  }
  put(TAG "mounted ");
  put(type);
  put(" on ");
  put(dir);
  put("\n");
}

static void setup_console(void) {
  // The kernel opens /dev/console for init when the initramfs has that node.
  // Re-open it after devtmpfs is mounted so that output works either way.
  int fd = open("/dev/console", O_RDWR, 0);
  if (fd < 0) return;
  if (fd != 0) dup2(fd, 0);
  if (fd != 1) dup2(fd, 1);
  if (fd != 2) dup2(fd, 2);
  if (fd > 2) close(fd);
}

static void print_version(void) {
  if (slurp("/proc/version") > 0) say("kernel: ", chomp(g_buf), 0);
}

static void print_cpus(void) {
  if (slurp("/proc/cpuinfo") < 0) {
    say_err("open", "/proc/cpuinfo");
    return;
  }
  unsigned long count = 0;
  const char *line = g_buf;
  while (*line) {
    if (starts_with(line, "processor")) count++;
    const char *nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  say_num("processors: ", count, 0);
}

static void print_memory(void) {
  if (slurp("/proc/meminfo") < 0) {
    say_err("open", "/proc/meminfo");
    return;
  }
  char *line = g_buf;
  while (*line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (starts_with(line, "MemTotal:")) {
      char *v = line + strlen("MemTotal:");
      while (*v == ' ') v++;
      say("MemTotal: ", v, 0);
      return;
    }
    if (!nl) break;
    line = nl + 1;
  }
  say("MemTotal: ", "not found", 0);
}

static void print_block_devices(void) {
  static char dirents[4096];
  int dfd = open("/sys/block", O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0) {
    say_err("open", "/sys/block");
    return;
  }
  unsigned long found = 0;
  for (;;) {
    int n = getdents64(dfd, (struct linux_dirent64 *)dirents, sizeof(dirents));
    if (n <= 0) break;
    for (int off = 0; off < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(dirents + off);
      off += d->d_reclen;
      if (d->d_name[0] == '.') continue;
      char path[256];
      strlcpy(path, "/sys/block/", sizeof(path));
      strlcat(path, d->d_name, sizeof(path));
      strlcat(path, "/size", sizeof(path));
      unsigned long sectors = 0;
      if (slurp(path) > 0) sectors = (unsigned long)atol(g_buf);
      found++;
      put(TAG "block device ");
      put(d->d_name);
      put(": ");
      put(utoa(sectors));
      put(" sectors (");
      put(utoa(sectors / 2));
      put(" KiB)");
      strlcpy(path, "/sys/block/", sizeof(path));
      strlcat(path, d->d_name, sizeof(path));
      strlcat(path, "/ro", sizeof(path));
      if (slurp(path) > 0 && g_buf[0] == '1') put(" read-only");
      put("\n");
    }
  }
  close(dfd);
  say_num("block devices: ", found, 0);
}

// Returns the LINUX_REBOOT_CMD_* chosen with crosvm_init= on the command line.
static int final_action(const char **name) {
  *name = "poweroff";
  if (slurp("/proc/cmdline") < 0) return LINUX_REBOOT_CMD_POWER_OFF;
  const char *key = "crosvm_init=";
  for (char *p = g_buf; *p; p++) {
    if ((p == g_buf || p[-1] == ' ') && starts_with(p, key)) {
      p += strlen(key);
      if (starts_with(p, "reboot")) {
        *name = "reboot";
        return LINUX_REBOOT_CMD_RESTART;
      }
      if (starts_with(p, "halt")) {
        *name = "halt";
        return LINUX_REBOOT_CMD_HALT;
      }
      break;
    }
  }
  return LINUX_REBOOT_CMD_POWER_OFF;
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  mount_one("devtmpfs", "/dev", "devtmpfs");
  setup_console();
  say("hello from the crosvm test guest's init", 0, 0);
  mount_one("proc", "/proc", "proc");
  mount_one("sysfs", "/sys", "sysfs");
  print_version();
  print_cpus();
  print_memory();
  print_block_devices();
  if (slurp("/proc/uptime") > 0) say("uptime: ", chomp(g_buf), 0);

  const char *name;
  int cmd = final_action(&name);
  say(name, 0, 0);
  reboot(cmd);
  // Only reached if the reboot syscall failed; returning makes the kernel
  // panic ("Attempted to kill init"), which with panic=-1 resets at once.
  say_err("reboot", name);
  return 1;
}
