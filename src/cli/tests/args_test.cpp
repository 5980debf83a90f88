#include "cli/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace crosvm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Args = std::vector<std::string>;

// Parses `args` (the words after `crosvm run`) and fails the test on an error.
Config MustParse(const Args& args) {
  auto r = ParseRunArgs(args);
  if (!r.ok()) {
    ADD_FAILURE() << "ParseRunArgs failed: " << r.error().message();
    return Config{};
  }
  return *r;
}

// Parses `args` expecting an error and returns its message ("" and a failure if it parsed).
std::string ParseError(const Args& args) {
  auto r = ParseRunArgs(args);
  if (r.ok()) {
    ADD_FAILURE() << "ParseRunArgs unexpectedly succeeded";
    return "";
  }
  return r.error().message();
}

// ---------------------------------------------------------------------------------------------
// Defaults and the kernel path.

TEST(ParseRunArgsTest, KernelOnlyGivesDefaults) {
  Config c = MustParse({"vmlinux"});
  EXPECT_EQ(c.kernel, "vmlinux");
  EXPECT_FALSE(c.initrd.has_value());
  EXPECT_THAT(c.params, IsEmpty());
  EXPECT_EQ(c.cpus, 1u);
  EXPECT_THAT(c.cpu_affinity, IsEmpty());
  EXPECT_EQ(c.mem_mib, 256u);
  EXPECT_THAT(c.disks, IsEmpty());
  EXPECT_TRUE(c.sandbox);
  EXPECT_FALSE(c.syslog_tag.has_value());
  EXPECT_THAT(c.serials, IsEmpty());
  EXPECT_FALSE(c.socket_path.has_value());
  EXPECT_FALSE(c.seccomp_policy_dir.has_value());
}

TEST(ParseRunArgsTest, MissingKernelIsAnError) {
  EXPECT_THAT(ParseError({}), HasSubstr("no kernel"));
  EXPECT_THAT(ParseError({"-c", "2"}), HasSubstr("no kernel"));
  EXPECT_THAT(ParseError({"--mem=512", "--disable-sandbox"}), HasSubstr("no kernel"));
}

TEST(ParseRunArgsTest, TwoKernelsAreAnError) {
  std::string e = ParseError({"vmlinux", "bzImage"});
  EXPECT_THAT(e, HasSubstr("more than one kernel"));
  EXPECT_THAT(e, HasSubstr("vmlinux"));
  EXPECT_THAT(e, HasSubstr("bzImage"));
}

TEST(ParseRunArgsTest, DoubleDashEndsOptions) {
  // After "--" everything is positional, even words that look like options.
  EXPECT_EQ(MustParse({"--", "--cpus"}).kernel, "--cpus");
  EXPECT_EQ(MustParse({"--", "-c"}).kernel, "-c");
  Config c = MustParse({"-c", "3", "--", "vmlinux"});
  EXPECT_EQ(c.kernel, "vmlinux");
  EXPECT_EQ(c.cpus, 3u);
  // "--" with nothing after it leaves no kernel; two words after it are two kernels.
  EXPECT_THAT(ParseError({"-c", "2", "--"}), HasSubstr("no kernel"));
  EXPECT_THAT(ParseError({"--", "a", "b"}), HasSubstr("more than one kernel"));
  // An option after "--" is not applied.
  EXPECT_THAT(ParseError({"vmlinux", "--", "-c", "2"}), HasSubstr("more than one kernel"));
}

// ---------------------------------------------------------------------------------------------
// Implemented options: every spelling sets the right field.

TEST(ParseRunArgsTest, ParamsAllFormsAccumulateInOrder) {
  Config c = MustParse({"--params", "a=1", "--params=b=2", "-p", "c", "-pd e", "vmlinux"});
  EXPECT_THAT(c.params, ElementsAre("a=1", "b=2", "c", "d e"));
}

TEST(ParseRunArgsTest, CpusAllForms) {
  EXPECT_EQ(MustParse({"--cpus", "2", "k"}).cpus, 2u);
  EXPECT_EQ(MustParse({"--cpus=3", "k"}).cpus, 3u);
  EXPECT_EQ(MustParse({"-c", "4", "k"}).cpus, 4u);
  EXPECT_EQ(MustParse({"-c5", "k"}).cpus, 5u);
}

TEST(ParseRunArgsTest, CpusRange) {
  EXPECT_EQ(MustParse({"-c", "1", "k"}).cpus, 1u);
  EXPECT_EQ(MustParse({"-c", "64", "k"}).cpus, 64u);
  EXPECT_THAT(ParseError({"-c", "0", "k"}), HasSubstr("out of range"));
  EXPECT_THAT(ParseError({"-c", "65", "k"}), HasSubstr("out of range"));
  EXPECT_THAT(ParseError({"--cpus=65", "k"}), HasSubstr("--cpus"));
}

TEST(ParseRunArgsTest, CpuAffinityAllForms) {
  EXPECT_THAT(MustParse({"--cpu-affinity", "0,1-3,5", "k"}).cpu_affinity,
              ElementsAre(0, 1, 2, 3, 5));
  EXPECT_THAT(MustParse({"--cpu-affinity=7", "k"}).cpu_affinity, ElementsAre(7));
  EXPECT_THAT(ParseError({"--cpu-affinity", "3-1", "k"}), HasSubstr("--cpu-affinity"));
}

TEST(ParseRunArgsTest, MemAllForms) {
  EXPECT_EQ(MustParse({"--mem", "512", "k"}).mem_mib, 512u);
  EXPECT_EQ(MustParse({"--mem=1024", "k"}).mem_mib, 1024u);
  EXPECT_EQ(MustParse({"-m", "64", "k"}).mem_mib, 64u);
  EXPECT_EQ(MustParse({"-m128", "k"}).mem_mib, 128u);
}

TEST(ParseRunArgsTest, MemRange) {
  constexpr uint64_t kOneTiBInMib = uint64_t{1} << 20;
  EXPECT_EQ(MustParse({"-m", "2", "k"}).mem_mib, 2u);
  EXPECT_EQ(MustParse({"-m", std::to_string(kOneTiBInMib), "k"}).mem_mib, kOneTiBInMib);
  EXPECT_THAT(ParseError({"-m", "1", "k"}), HasSubstr("out of range"));
  EXPECT_THAT(ParseError({"-m", "0", "k"}), HasSubstr("out of range"));
  EXPECT_THAT(ParseError({"-m", std::to_string(kOneTiBInMib + 1), "k"}), HasSubstr("out of range"));
  EXPECT_THAT(ParseError({"-m", "--mem", "k"}), HasSubstr("not a number"));
}

TEST(ParseRunArgsTest, InitrdAllForms) {
  EXPECT_EQ(MustParse({"--initrd", "a.img", "k"}).initrd, "a.img");
  EXPECT_EQ(MustParse({"--initrd=b.img", "k"}).initrd, "b.img");
  EXPECT_EQ(MustParse({"-i", "c.img", "k"}).initrd, "c.img");
  EXPECT_EQ(MustParse({"-id.img", "k"}).initrd, "d.img");
}

TEST(ParseRunArgsTest, DuplicateInitrdIsAnError) {
  EXPECT_THAT(ParseError({"--initrd", "a", "-i", "b", "k"}), HasSubstr("only once"));
  EXPECT_THAT(ParseError({"--initrd=a", "--initrd=a", "k"}), HasSubstr("--initrd"));
}

TEST(ParseRunArgsTest, SandboxFlags) {
  EXPECT_FALSE(MustParse({"--disable-sandbox", "k"}).sandbox);
  EXPECT_TRUE(MustParse({"--disable-sandbox", "--multiprocess", "k"}).sandbox);
  EXPECT_TRUE(MustParse({"--disable-sandbox", "-u", "k"}).sandbox);
  EXPECT_FALSE(MustParse({"-u", "--disable-sandbox", "k"}).sandbox);
}

TEST(ParseRunArgsTest, NoWlIsAcceptedAndChangesNothing) {
  Config c = MustParse({"--no-wl", "k"});
  EXPECT_EQ(c.kernel, "k");
  EXPECT_EQ(c.cpus, 1u);
  EXPECT_EQ(c.mem_mib, 256u);
  EXPECT_TRUE(c.sandbox);
}

TEST(ParseRunArgsTest, SeccompPolicyDirAllForms) {
  EXPECT_EQ(MustParse({"--seccomp-policy-dir", "/p", "k"}).seccomp_policy_dir, "/p");
  EXPECT_EQ(MustParse({"--seccomp-policy-dir=/q", "k"}).seccomp_policy_dir, "/q");
}

TEST(ParseRunArgsTest, SyslogTag) {
  EXPECT_EQ(MustParse({"--syslog-tag", "vm1", "k"}).syslog_tag, "vm1");
  EXPECT_EQ(MustParse({"--syslog-tag=vm2", "k"}).syslog_tag, "vm2");
  EXPECT_THAT(ParseError({"--syslog-tag=", "k"}), HasSubstr("empty"));
}

TEST(ParseRunArgsTest, SerialAllForms) {
  Config c = MustParse({"--serial", "type=stdout,num=1,console", "--serial=type=sink,num=2",
                        "--serial", "type=file,path=/tmp/com3,num=3", "k"});
  ASSERT_EQ(c.serials.size(), 3u);
  EXPECT_EQ(c.serials[0].type, SerialOption::Type::kStdout);
  EXPECT_EQ(c.serials[0].num, 1);
  EXPECT_TRUE(c.serials[0].console);
  EXPECT_EQ(c.serials[1].type, SerialOption::Type::kSink);
  EXPECT_EQ(c.serials[1].num, 2);
  EXPECT_FALSE(c.serials[1].console);
  EXPECT_EQ(c.serials[2].type, SerialOption::Type::kFile);
  EXPECT_EQ(c.serials[2].num, 3);
  EXPECT_EQ(c.serials[2].path, "/tmp/com3");
}

TEST(ParseRunArgsTest, SerialSamePortTwiceIsAnError) {
  EXPECT_THAT(ParseError({"--serial", "type=stdout,num=2", "--serial", "type=sink,num=2", "k"}),
              HasSubstr("COM2 is configured twice"));
  // num defaults to 1 on both.
  EXPECT_THAT(ParseError({"--serial", "type=stdout", "--serial", "type=sink", "k"}),
              HasSubstr("COM1 is configured twice"));
}

TEST(ParseRunArgsTest, SerialTwoConsolesIsAnError) {
  EXPECT_THAT(ParseError({"--serial", "type=stdout,num=1,console", "--serial",
                          "type=sink,num=2,console=true", "k"}),
              HasSubstr("more than one console"));
}

TEST(ParseRunArgsTest, SerialBadSpecIsAnErrorNamingTheFlag) {
  EXPECT_THAT(ParseError({"--serial", "type=file", "k"}), HasSubstr("--serial"));
  EXPECT_THAT(ParseError({"--serial=num=9,type=sink", "k"}), HasSubstr("out of range"));
}

TEST(ParseRunArgsTest, OptionsMayAlsoFollowTheKernel) {
  Config c = MustParse({"vmlinux", "-c", "2"});
  EXPECT_EQ(c.kernel, "vmlinux");
  EXPECT_EQ(c.cpus, 2u);
}

// ---------------------------------------------------------------------------------------------
// Disks.

TEST(ParseRunArgsTest, DisksInOrder) {
  Config c = MustParse({"-r", "root.img", "--disk", "a.qcow2", "--rwdisk=b.img", "--qcow", "c",
                        "--rwqcow", "d", "-de", "vmlinux"});
  ASSERT_EQ(c.disks.size(), 6u);
  EXPECT_EQ(c.disks[0].path, "root.img");
  EXPECT_TRUE(c.disks[0].root);
  EXPECT_FALSE(c.disks[0].writable);
  EXPECT_EQ(c.disks[1].path, "a.qcow2");
  EXPECT_FALSE(c.disks[1].writable);
  EXPECT_FALSE(c.disks[1].root);
  EXPECT_EQ(c.disks[2].path, "b.img");
  EXPECT_TRUE(c.disks[2].writable);
  EXPECT_FALSE(c.disks[3].writable) << "--qcow is --disk";
  EXPECT_TRUE(c.disks[4].writable) << "--rwqcow is --rwdisk";
  EXPECT_EQ(c.disks[5].path, "e");
  // Without format= the format is probed.
  EXPECT_FALSE(c.disks[0].format.has_value());
  EXPECT_FALSE(c.disks[2].format.has_value());
  EXPECT_FALSE(c.disks[5].format.has_value());
  // The deprecated aliases mean format=qcow2.
  EXPECT_EQ(c.disks[3].format, disk::ImageFormat::kQcow2);
  EXPECT_EQ(c.disks[4].format, disk::ImageFormat::kQcow2);
}

TEST(ParseRunArgsTest, DiskFormatAndBackingDir) {
  Config c = MustParse({"-r", "root.img,format=raw", "--disk", "a.qcow2,format=qcow2,backing=/img",
                        "--rwdisk=b.img,backing=dir,format=qcow2", "--rwqcow", "d,backing=/x",
                        "--qcow", "e,format=qcow2", "--rwdisk", "f.img,format=raw", "vmlinux"});
  ASSERT_EQ(c.disks.size(), 6u);
  EXPECT_EQ(c.disks[0].path, "root.img");
  EXPECT_TRUE(c.disks[0].root);
  EXPECT_EQ(c.disks[0].format, disk::ImageFormat::kRaw);
  EXPECT_FALSE(c.disks[0].backing_dir.has_value());
  EXPECT_EQ(c.disks[1].path, "a.qcow2");
  EXPECT_EQ(c.disks[1].format, disk::ImageFormat::kQcow2);
  EXPECT_EQ(c.disks[1].backing_dir, "/img");
  EXPECT_EQ(c.disks[2].path, "b.img");
  EXPECT_TRUE(c.disks[2].writable);
  EXPECT_EQ(c.disks[2].format, disk::ImageFormat::kQcow2);
  EXPECT_EQ(c.disks[2].backing_dir, "dir");
  EXPECT_EQ(c.disks[3].format, disk::ImageFormat::kQcow2);
  EXPECT_EQ(c.disks[3].backing_dir, "/x");
  EXPECT_TRUE(c.disks[3].writable);
  EXPECT_EQ(c.disks[4].format, disk::ImageFormat::kQcow2);
  EXPECT_EQ(c.disks[5].format, disk::ImageFormat::kRaw);
  EXPECT_TRUE(c.disks[5].writable);
}

TEST(ParseRunArgsTest, DiskFormatErrors) {
  EXPECT_THAT(ParseError({"--disk", "a,format=vmdk", "k"}), HasSubstr("unknown format 'vmdk'"));
  EXPECT_THAT(ParseError({"--disk", "a,format=", "k"}), HasSubstr("unknown format ''"));
  EXPECT_THAT(ParseError({"--disk", "a,size=3", "k"}), HasSubstr("unknown disk option 'size=3'"));
  EXPECT_THAT(ParseError({"--disk", "a,b.img", "k"}), HasSubstr("a path cannot contain ','"));
  EXPECT_THAT(ParseError({"--disk", "a,format=raw,format=qcow2", "k"}),
              HasSubstr("format= given twice"));
  EXPECT_THAT(ParseError({"--disk", "a,format=qcow2,backing=", "k"}),
              HasSubstr("backing= needs a directory"));
  EXPECT_THAT(ParseError({"--disk", "a,format=qcow2,backing=x,backing=y", "k"}),
              HasSubstr("backing= given twice"));
  // backing=DIR only where backing files are followed at all.
  EXPECT_THAT(ParseError({"--rwdisk", "a,backing=/x", "k"}),
              HasSubstr("--rwdisk: backing=DIR needs format=qcow2"));
  EXPECT_THAT(ParseError({"-r", "a,format=raw,backing=/x", "k"}),
              HasSubstr("backing=DIR needs format=qcow2"));
  EXPECT_THAT(ParseError({"--qcow", "a,format=raw", "k"}),
              HasSubstr("--qcow means format=qcow2; use --disk"));
  EXPECT_THAT(ParseError({"--rwqcow", "a,format=raw", "k"}),
              HasSubstr("--rwqcow means format=qcow2; use --rwdisk"));
  EXPECT_THAT(ParseError({"--disk", ",format=raw", "k"}), HasSubstr("--disk: the path is empty"));
}

TEST(ParseRunArgsTest, DiskErrors) {
  EXPECT_THAT(ParseError({"-r", "a", "--root", "b", "k"}),
              HasSubstr("--root can be given only once"));
  EXPECT_THAT(ParseError({"--disk=", "k"}), HasSubstr("--disk: the path is empty"));
  EXPECT_THAT(ParseError({"--rwdisk"}), HasSubstr("needs a value"));
  Args many;
  for (int i = 0; i < 31; ++i) {
    many.push_back("-d");
    many.push_back("disk" + std::to_string(i));
  }
  many.push_back("k");
  EXPECT_THAT(ParseError(many), HasSubstr("at most 30 disks"));
}

TEST(VirtioDiskNameTest, LinuxNaming) {
  EXPECT_EQ(VirtioDiskName(0), "vda");
  EXPECT_EQ(VirtioDiskName(1), "vdb");
  EXPECT_EQ(VirtioDiskName(25), "vdz");
  EXPECT_EQ(VirtioDiskName(26), "vdaa");
  EXPECT_EQ(VirtioDiskName(27), "vdab");
  EXPECT_EQ(VirtioDiskName(26 + 26 * 26), "vdaaa");
}

// ---------------------------------------------------------------------------------------------
// Networking.

TEST(ParseRunArgsTest, NetFlagsTogether) {
  Config c = MustParse({"--host_ip", "10.0.2.1", "--netmask=255.255.255.0", "--mac",
                        "02:00:00:12:34:AB", "vmlinux"});
  EXPECT_EQ(c.host_ip, "10.0.2.1");
  EXPECT_EQ(c.netmask, "255.255.255.0");
  ASSERT_TRUE(c.mac.has_value());
  EXPECT_EQ(net::FormatMac(*c.mac), "02:00:00:12:34:ab");
  EXPECT_THAT(c.tap_fds, IsEmpty());
  Config none = MustParse({"vmlinux"});
  EXPECT_FALSE(none.host_ip || none.netmask || none.mac);
}

TEST(ParseRunArgsTest, NetFlagsMissingOnesAreNamed) {
  std::string e = ParseError({"--host_ip", "10.0.2.1", "vmlinux"});
  EXPECT_THAT(e, HasSubstr("go together"));
  EXPECT_THAT(e, HasSubstr("--netmask and --mac missing"));
  e = ParseError({"--mac", "02:00:00:00:00:01", "--netmask", "255.0.0.0", "vmlinux"});
  EXPECT_THAT(e, HasSubstr(": --host_ip missing"));
  e = ParseError({"--host_ip", "10.0.2.1", "--mac", "02:00:00:00:00:01", "vmlinux"});
  EXPECT_THAT(e, HasSubstr(": --netmask missing"));
}

TEST(ParseRunArgsTest, NetFlagsBadValues) {
  const Args rest = {"--netmask", "255.255.255.0", "--mac", "02:00:00:00:00:01", "vmlinux"};
  auto with = [&](Args a) {
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  };
  EXPECT_THAT(ParseError(with({"--host_ip", "10.0.2"})),
              HasSubstr("--host_ip: '10.0.2' is not a dotted IPv4 address"));
  EXPECT_THAT(ParseError(with({"--host_ip", "fe80::1"})), HasSubstr("not a dotted IPv4"));
  EXPECT_THAT(ParseError({"--netmask", "255.0.255.0", "vmlinux"}),
              HasSubstr("--netmask: '255.0.255.0' is not a netmask"));
  EXPECT_THAT(ParseError({"--netmask", "24", "vmlinux"}), HasSubstr("--netmask: '24'"));
  EXPECT_THAT(ParseError({"--mac", "02:00:00:00:00", "vmlinux"}),
              HasSubstr("--mac: bad MAC address '02:00:00:00:00'"));
  EXPECT_THAT(ParseError({"--mac", "01:00:00:00:00:01", "vmlinux"}), HasSubstr("multicast"));
  EXPECT_THAT(ParseError(with({"--host_ip", "10.0.2.1", "--host_ip", "10.0.2.3"})),
              HasSubstr("--host_ip can be given only once"));
  EXPECT_THAT(ParseError({"--mac", "02:00:00:00:00:01", "--mac=02:00:00:00:00:02", "vmlinux"}),
              HasSubstr("--mac can be given only once"));
}

TEST(ParseRunArgsTest, TapFdRepeatable) {
  Config c = MustParse({"--tap-fd", "5", "--tap-fd=3", "--tap-fd", "40", "vmlinux"});
  EXPECT_THAT(c.tap_fds, ElementsAre(5, 3, 40));
  // With the created TAP too.
  c = MustParse({"--tap-fd", "7", "--host_ip", "10.0.2.1", "--netmask", "255.255.255.0", "--mac",
                 "02:00:00:00:00:01", "vmlinux"});
  EXPECT_THAT(c.tap_fds, ElementsAre(7));
  EXPECT_TRUE(c.host_ip.has_value());
}

TEST(ParseRunArgsTest, TapFdErrors) {
  EXPECT_THAT(ParseError({"--tap-fd", "x", "vmlinux"}), HasSubstr("--tap-fd: 'x' is not a number"));
  EXPECT_THAT(ParseError({"--tap-fd", "1", "vmlinux"}), HasSubstr("out of range (3 to"));
  EXPECT_THAT(ParseError({"--tap-fd", "5", "--tap-fd", "5", "vmlinux"}),
              HasSubstr("--tap-fd 5 is given twice"));
}

TEST(ParseRunArgsTest, DisksAndNetworkCardsShareThePciSlots) {
  Args a;
  for (int i = 0; i < 29; ++i) {
    a.push_back("--disk");
    a.push_back("d" + std::to_string(i));
  }
  Args ok = a;
  ok.insert(ok.end(), {"--tap-fd", "3", "vmlinux"});
  EXPECT_EQ(MustParse(ok).tap_fds.size(), 1u);
  a.insert(a.end(), {"--tap-fd", "3", "--tap-fd", "4", "vmlinux"});
  EXPECT_THAT(ParseError(a), HasSubstr("29 disks and 2 network cards are more than the 30"));
}

TEST(ParseRunArgsTest, VhostNetIsNotSupportedYet) {
  EXPECT_THAT(ParseError({"--vhost-net", "vmlinux"}),
              HasSubstr("--vhost-net is not supported yet"));
}

// ---------------------------------------------------------------------------------------------
// Options whose feature is not built: each is an error saying so, naming the flag.

struct NotYet {
  const char* name;
  bool takes_value;
  char short_name = 0;
};

const NotYet kNotYet[] = {
    {"rw-pmem-device", true}, {"pmem-device", true},
    {"vhost-net", false},     {"cid", true},
    {"shared-dir", true},     {"wayland-sock", true},
    {"wayland-group", true},  {"x-display", true},
    {"gpu", false},           {"software-tpm", false},
    {"evdev", true},          {"single-touch", true},
    {"trackpad", true},       {"mouse", true},
    {"keyboard", true},       {"plugin", true},
    {"plugin-root", true},    {"plugin-mount", true},
    {"plugin-gid-map", true}, {"split-irqchip", false},
};

TEST(ParseRunArgsTest, UnsupportedOptionsFailWithNotSupportedYet) {
  for (const NotYet& o : kNotYet) {
    SCOPED_TRACE(o.name);
    const std::string flag = std::string("--") + o.name;
    Args args = {flag};
    if (o.takes_value) args.push_back("value");
    args.push_back("vmlinux");
    std::string e = ParseError(args);
    EXPECT_THAT(e, HasSubstr("not supported yet"));
    EXPECT_THAT(e, HasSubstr(flag));
    if (o.takes_value) {
      EXPECT_THAT(ParseError({flag + "=value", "vmlinux"}), HasSubstr("not supported yet"));
    }
    if (o.short_name) {
      std::string short_flag = std::string("-") + o.short_name;
      EXPECT_THAT(ParseError({short_flag, "value", "vmlinux"}), HasSubstr("not supported yet"));
      EXPECT_THAT(ParseError({short_flag + "value", "vmlinux"}), HasSubstr("not supported yet"));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Syntax errors.

TEST(ParseRunArgsTest, UnknownOptions) {
  EXPECT_THAT(ParseError({"--bogus", "k"}), HasSubstr("unknown option --bogus"));
  EXPECT_THAT(ParseError({"--bogus=1", "k"}), HasSubstr("unknown option --bogus"));
  EXPECT_THAT(ParseError({"-x", "k"}), HasSubstr("unknown option -x"));
  EXPECT_THAT(ParseError({"-xyz", "k"}), HasSubstr("unknown option -x"));
  // Long names need two dashes, and prefixes are not expanded.
  EXPECT_THAT(ParseError({"--cpu", "2", "k"}), HasSubstr("unknown option"));
  EXPECT_THAT(ParseError({"--CPUS", "2", "k"}), HasSubstr("unknown option"));
}

TEST(ParseRunArgsTest, MissingValue) {
  EXPECT_THAT(ParseError({"k", "--cpus"}), HasSubstr("--cpus needs a value"));
  EXPECT_THAT(ParseError({"k", "-c"}), HasSubstr("-c needs a value"));
  EXPECT_THAT(ParseError({"k", "--mem"}), HasSubstr("needs a value"));
  EXPECT_THAT(ParseError({"k", "--initrd"}), HasSubstr("needs a value"));
  EXPECT_THAT(ParseError({"k", "-p"}), HasSubstr("needs a value"));
  EXPECT_THAT(ParseError({"k", "--serial"}), HasSubstr("needs a value"));
}

TEST(ParseRunArgsTest, ValueGivenToAFlag) {
  EXPECT_THAT(ParseError({"--disable-sandbox=yes", "k"}), HasSubstr("takes no value"));
  EXPECT_THAT(ParseError({"--no-wl=1", "k"}), HasSubstr("takes no value"));
  EXPECT_THAT(ParseError({"--multiprocess=", "k"}), HasSubstr("takes no value"));
  EXPECT_THAT(ParseError({"-ux", "k"}), HasSubstr("-u takes no value"));
}

TEST(ParseRunArgsTest, BadNumbers) {
  for (const char* bad :
       {"abc", "", "2x", "-1", "+2", " 2", "0x2", "1.5", "1e3", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(ParseError({"--cpus", bad, "k"}), HasSubstr("not a number"));
    EXPECT_THAT(ParseError({std::string("--mem=") + bad, "k"}), HasSubstr("not a number"));
  }
  EXPECT_THAT(ParseError({"-cx", "k"}), HasSubstr("'x' is not a number"));
}

// ---------------------------------------------------------------------------------------------
// ParseCpuSet.

TEST(ParseCpuSetTest, ListsAndRanges) {
  auto r = ParseCpuSet("0,1-3,5");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_THAT(*r, ElementsAre(0, 1, 2, 3, 5));
  EXPECT_THAT(*ParseCpuSet("4"), ElementsAre(4));
  EXPECT_THAT(*ParseCpuSet("2-2"), ElementsAre(2));
  // Sorted and deduplicated.
  EXPECT_THAT(*ParseCpuSet("5,0-2,1"), ElementsAre(0, 1, 2, 5));
  EXPECT_THAT(*ParseCpuSet("1023"), ElementsAre(1023));  // CPU_SETSIZE - 1
}

TEST(ParseCpuSetTest, Errors) {
  for (const char* bad :
       {"3-1", "", "1,", "a", "99999", "1024", ",1", "1,,2", "1-", "-1", "1-2-3", "1 ", "0-a"}) {
    SCOPED_TRACE(bad);
    auto r = ParseCpuSet(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message(), HasSubstr("--cpu-affinity"));
  }
  EXPECT_THAT(ParseCpuSet("3-1").error().message(), HasSubstr("backwards"));
  EXPECT_THAT(ParseCpuSet("99999").error().message(), HasSubstr("out of range"));
}

// ---------------------------------------------------------------------------------------------
// ParseSerial.

TEST(ParseSerialTest, Types) {
  auto s = ParseSerial("type=stdout");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, SerialOption::Type::kStdout);
  EXPECT_EQ(s->num, 1);
  EXPECT_FALSE(s->console);
  EXPECT_TRUE(s->path.empty());

  s = ParseSerial("type=sink");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, SerialOption::Type::kSink);

  s = ParseSerial("type=file,path=/var/log/com1");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, SerialOption::Type::kFile);
  EXPECT_EQ(s->path, "/var/log/com1");

  // Key order does not matter.
  s = ParseSerial("path=/x,num=4,type=file");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, SerialOption::Type::kFile);
  EXPECT_EQ(s->num, 4);
  EXPECT_EQ(s->path, "/x");
}

TEST(ParseSerialTest, FileNeedsPathAndPathIsOnlyForFile) {
  EXPECT_THAT(ParseSerial("type=file").error().message(), HasSubstr("needs path"));
  EXPECT_THAT(ParseSerial("type=file,path=").error().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseSerial("type=stdout,path=/x").error().message(),
              HasSubstr("only for type=file"));
  EXPECT_THAT(ParseSerial("type=sink,path=/x").error().message(), HasSubstr("only for type=file"));
}

TEST(ParseSerialTest, Num) {
  for (int n = 1; n <= 4; ++n) {
    auto s = ParseSerial("type=sink,num=" + std::to_string(n));
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ(s->num, n);
  }
  for (const char* bad : {"0", "5", "x", "", "-1"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseSerial(std::string("type=sink,num=") + bad).ok());
  }
}

TEST(ParseSerialTest, Console) {
  EXPECT_TRUE(ParseSerial("type=stdout,console")->console);
  EXPECT_TRUE(ParseSerial("type=stdout,console=true")->console);
  EXPECT_FALSE(ParseSerial("type=stdout,console=false")->console);
  EXPECT_THAT(ParseSerial("type=stdout,console=yes").error().message(), HasSubstr("console"));
}

TEST(ParseSerialTest, SyslogIsNotSupportedYet) {
  auto s = ParseSerial("type=syslog");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("not supported yet"));
}

TEST(ParseSerialTest, OtherErrors) {
  EXPECT_THAT(ParseSerial("").error().message(), HasSubstr("type= is required"));
  EXPECT_THAT(ParseSerial("num=2").error().message(), HasSubstr("type= is required"));
  EXPECT_THAT(ParseSerial("type=tty").error().message(), HasSubstr("unknown type"));
  EXPECT_THAT(ParseSerial("type=stdout,speed=9600").error().message(), HasSubstr("unknown key"));
}

// ---------------------------------------------------------------------------------------------
// --help and the usage text.

TEST(WantsHelpTest, Detection) {
  EXPECT_TRUE(WantsHelp({"--help"}));
  EXPECT_TRUE(WantsHelp({"-h"}));
  EXPECT_TRUE(WantsHelp({"-c", "2", "vmlinux", "--help"}));
  EXPECT_FALSE(WantsHelp({}));
  EXPECT_FALSE(WantsHelp({"-c", "2", "vmlinux"}));
  EXPECT_FALSE(WantsHelp({"--helpme", "vmlinux"}));
  EXPECT_FALSE(WantsHelp({"-hx"}));
  // After "--" it is a path, not a request for help.
  EXPECT_FALSE(WantsHelp({"--", "--help"}));
  EXPECT_FALSE(WantsHelp({"--", "-h"}));
}

TEST(RunUsageTest, NamesEveryOption) {
  const std::string usage = RunUsage();
  EXPECT_THAT(usage, HasSubstr("Usage: crosvm run"));
  const char* implemented[] = {"params",
                               "cpus",
                               "cpu-affinity",
                               "mem",
                               "initrd",
                               "no-wl",
                               "multiprocess",
                               "disable-sandbox",
                               "seccomp-policy-dir",
                               "syslog-tag",
                               "serial",
                               "host_ip",
                               "netmask",
                               "mac",
                               "tap-fd"};
  for (const char* name : implemented) {
    EXPECT_THAT(usage, HasSubstr(std::string("--") + name)) << name;
  }
  for (const NotYet& o : kNotYet) {
    EXPECT_THAT(usage, HasSubstr(std::string("--") + o.name)) << o.name;
  }
  // Short forms are shown next to their long names.
  for (const char* pair : {"-p, --params", "-c, --cpus", "-m, --mem", "-i, --initrd", "-r, --root",
                           "-d, --disk", "-s, --socket", "-u, --multiprocess"}) {
    EXPECT_THAT(usage, HasSubstr(pair));
  }
  EXPECT_THAT(usage, HasSubstr("not supported yet"));
  EXPECT_THAT(usage, HasSubstr("PATH[,format=raw|qcow2][,backing=DIR]"));
}

TEST(RunUsageTest, HasTheSandboxNote) {
  const std::string usage = RunUsage();
  EXPECT_THAT(usage, HasSubstr("Sandbox:"));
  EXPECT_THAT(usage, HasSubstr("its own process, in new user, PID, mount"));
}

}  // namespace
}  // namespace crosvm::cli
