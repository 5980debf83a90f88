#include "loader/kernel_loader.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <stdlib.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "memory/guest_memory.h"

namespace crosvm::loader {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMemSize = 64 << 20;
constexpr uint64_t kLowest = 0x100000;  // where crosvm lets a kernel start (1 MiB)

memory::GuestMemory MakeMemory(const std::vector<memory::MemoryRange>& ranges = {{0, kMemSize}}) {
  auto m = memory::GuestMemory::Create(ranges);
  if (!m.ok()) {
    ADD_FAILURE() << m.error().message();
    std::abort();
  }
  return std::move(*m);
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return v;
}

std::vector<uint8_t> ReadMem(const memory::GuestMemory& mem, uint64_t gpa, size_t n) {
  std::vector<uint8_t> out(n);
  EXPECT_TRUE(mem.Read(gpa, out).ok()) << "read at " << gpa;
  return out;
}

template <typename T>
void Put(std::vector<uint8_t>& image, size_t offset, T value) {
  ASSERT_LE(offset + sizeof(T), image.size());
  std::memcpy(image.data() + offset, &value, sizeof(T));
}

// ---------------------------------------------------------------------------------------------
// ELF images built in the test.

struct Segment {
  uint64_t paddr;
  std::vector<uint8_t> data;  // the file bytes (p_filesz = data.size())
  uint64_t memsz;
  uint64_t vaddr = 0;  // 0: same as paddr
  uint32_t type = PT_LOAD;
};

constexpr size_t kPhdrOffset = sizeof(Elf64_Ehdr);

size_t PhdrAt(size_t i) {
  return kPhdrOffset + i * sizeof(Elf64_Phdr);
}

// Header, program headers right after it, then each segment's bytes.
std::vector<uint8_t> BuildElf(uint64_t entry, const std::vector<Segment>& segments) {
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = kPhdrOffset;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<uint16_t>(segments.size());

  std::vector<uint8_t> image(PhdrAt(segments.size()));
  std::memcpy(image.data(), &eh, sizeof(eh));
  for (size_t i = 0; i < segments.size(); ++i) {
    const Segment& s = segments[i];
    Elf64_Phdr ph{};
    ph.p_type = s.type;
    ph.p_flags = PF_R | PF_X;
    ph.p_offset = image.size();
    ph.p_paddr = s.paddr;
    ph.p_vaddr = s.vaddr ? s.vaddr : s.paddr;
    ph.p_filesz = s.data.size();
    ph.p_memsz = s.memsz;
    ph.p_align = 0x1000;
    std::memcpy(image.data() + PhdrAt(i), &ph, sizeof(ph));
    image.insert(image.end(), s.data.begin(), s.data.end());
  }
  return image;
}

// A one-segment kernel at 2 MiB with 0x800 file bytes and 0x2000 bytes in memory.
std::vector<uint8_t> SimpleElf() {
  return BuildElf(0x200000, {{0x200000, Pattern(0x800, 1), 0x2000}});
}

std::string ElfError(std::vector<uint8_t> image, uint64_t lowest = kLowest) {
  auto mem = MakeMemory();
  auto r = LoadElf(mem, image, lowest);
  if (r.ok()) {
    ADD_FAILURE() << "LoadElf unexpectedly succeeded";
    return "";
  }
  return r.error().message();
}

TEST(LoadElfTest, LoadsSegmentsAtPaddrAndZeroFills) {
  auto mem = MakeMemory();
  // Garbage where the segments go, so zero-filling is visible.
  ASSERT_TRUE(mem.Write(0x200000, std::vector<uint8_t>(0x3000, 0xaa)).ok());
  ASSERT_TRUE(mem.Write(0x400000, std::vector<uint8_t>(0x2000, 0xaa)).ok());
  auto text = Pattern(0x1000, 3);
  auto data = Pattern(0x100, 9);
  auto image = BuildElf(0x200010, {{0x200000, text, 0x3000}, {0x400000, data, 0x2000}});

  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->format, KernelFormat::kElf);
  EXPECT_EQ(r->entry, 0x200010u);
  EXPECT_EQ(r->end, 0x402000u);
  EXPECT_EQ(r->cmdline_max, 2048u);
  EXPECT_EQ(r->initrd_addr_max, 0x37ffffffu);
  EXPECT_FALSE(r->bzimage_header.has_value());

  EXPECT_EQ(ReadMem(mem, 0x200000, text.size()), text);
  EXPECT_EQ(ReadMem(mem, 0x201000, 0x2000), std::vector<uint8_t>(0x2000, 0));
  EXPECT_EQ(ReadMem(mem, 0x400000, data.size()), data);
  EXPECT_EQ(ReadMem(mem, 0x400100, 0x1f00), std::vector<uint8_t>(0x1f00, 0));
}

TEST(LoadElfTest, SegmentsMayBeInAnyOrderAndAdjacent) {
  auto mem = MakeMemory();
  auto a = Pattern(0x1000, 1);
  auto b = Pattern(0x1000, 2);
  auto image = BuildElf(0x300000, {{0x301000, b, 0x1000}, {0x300000, a, 0x1000}});
  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->end, 0x302000u);
  EXPECT_EQ(ReadMem(mem, 0x300000, 0x1000), a);
  EXPECT_EQ(ReadMem(mem, 0x301000, 0x1000), b);
}

TEST(LoadElfTest, VirtualEntryIsTranslatedThroughItsSegment) {
  auto mem = MakeMemory();
  constexpr uint64_t kVaddr = 0xffffffff81000000;
  Segment s{0x1000000, Pattern(0x1000, 5), 0x4000, kVaddr};
  auto image = BuildElf(kVaddr + 0x1234, {s});
  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->entry, 0x1001234u);
  EXPECT_EQ(r->end, 0x1004000u);
  EXPECT_EQ(ReadMem(mem, 0x1000000, 0x1000), s.data);
}

TEST(LoadElfTest, EntryMayPointIntoTheZeroFilledPart) {
  auto mem = MakeMemory();
  auto image = BuildElf(0x201800, {{0x200000, Pattern(0x100, 1), 0x2000}});
  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->entry, 0x201800u);
}

TEST(LoadElfTest, NonLoadSegmentsAreIgnored) {
  auto mem = MakeMemory();
  // A note "segment" with an address outside RAM and below lowest_addr does not matter.
  Segment note{0xffff0000000, Pattern(0x10, 1), 0x10};
  note.type = PT_NOTE;
  Segment low_note{0, Pattern(0x10, 1), 0x10};
  low_note.type = PT_NOTE;
  auto text = Pattern(0x100, 4);
  auto image = BuildElf(0x200000, {note, {0x200000, text, 0x100}, low_note});
  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->end, 0x200100u);
  EXPECT_EQ(ReadMem(mem, 0x200000, text.size()), text);
  EXPECT_EQ(ReadMem(mem, 0, 0x10), std::vector<uint8_t>(0x10, 0));
}

TEST(LoadElfTest, SegmentExactlyAtLowestAddrAndAtTheEndOfRam) {
  auto mem = MakeMemory();
  auto image = BuildElf(kLowest, {{kLowest, Pattern(0x10, 1), 0x1000},
                                  {kMemSize - 0x1000, Pattern(0x10, 2), 0x1000}});
  auto r = LoadElf(mem, image, kLowest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->end, kMemSize);
}

TEST(LoadElfTest, TruncatedHeader) {
  auto image = SimpleElf();
  image.resize(sizeof(Elf64_Ehdr) - 1);
  EXPECT_THAT(ElfError(image), HasSubstr("truncated"));
  EXPECT_THAT(ElfError({}), HasSubstr("truncated"));
}

// LoadElf is callable on its own (LoadKernel is not the only caller), so it checks the magic.
TEST(LoadElfTest, MissingMagic) {
  auto image = SimpleElf();
  image[0] = 0;
  EXPECT_FALSE(ElfError(image).empty());
  image = SimpleElf();
  std::memcpy(image.data(), "MZ\x90\x00", 4);
  EXPECT_FALSE(ElfError(image).empty());
}

TEST(LoadElfTest, WrongClass) {
  auto image = SimpleElf();
  image[EI_CLASS] = ELFCLASS32;
  EXPECT_THAT(ElfError(image), HasSubstr("64-bit"));
}

TEST(LoadElfTest, WrongEndianness) {
  auto image = SimpleElf();
  image[EI_DATA] = ELFDATA2MSB;
  EXPECT_THAT(ElfError(image), HasSubstr("little-endian"));
}

TEST(LoadElfTest, WrongMachine) {
  for (uint16_t machine : {uint16_t{EM_386}, uint16_t{EM_AARCH64}, uint16_t{0}}) {
    auto image = SimpleElf();
    Put<uint16_t>(image, offsetof(Elf64_Ehdr, e_machine), machine);
    EXPECT_THAT(ElfError(image), HasSubstr("not x86_64"));
  }
}

TEST(LoadElfTest, BadProgramHeaderEntrySize) {
  for (uint16_t size :
       {uint16_t{0}, uint16_t{sizeof(Elf32_Phdr)}, uint16_t{57}, uint16_t{0xffff}}) {
    auto image = SimpleElf();
    Put<uint16_t>(image, offsetof(Elf64_Ehdr, e_phentsize), size);
    EXPECT_THAT(ElfError(image), HasSubstr("program header size"));
  }
}

TEST(LoadElfTest, ProgramHeadersOutsideTheFile) {
  const uint64_t size = SimpleElf().size();
  for (uint64_t phoff : {size, size - sizeof(Elf64_Phdr) + 1, uint64_t{UINT64_MAX},
                         uint64_t{UINT64_MAX - sizeof(Elf64_Phdr) + 1}, uint64_t{1} << 63}) {
    SCOPED_TRACE(phoff);
    auto image = SimpleElf();
    Put<uint64_t>(image, offsetof(Elf64_Ehdr, e_phoff), phoff);
    EXPECT_THAT(ElfError(image), HasSubstr("outside"));
  }
  // Too many headers for the file.
  auto image = SimpleElf();
  Put<uint16_t>(image, offsetof(Elf64_Ehdr, e_phnum), 0xffff);
  EXPECT_THAT(ElfError(image), HasSubstr("outside"));
  // Headers ending exactly at the end of the file are fine.
  image = BuildElf(0x200000, {{0x200000, {}, 0x1000}});
  ASSERT_EQ(image.size(), PhdrAt(1));
  auto mem = MakeMemory();
  EXPECT_TRUE(LoadElf(mem, image, kLowest).ok());
}

TEST(LoadElfTest, NoProgramHeaders) {
  auto image = SimpleElf();
  Put<uint16_t>(image, offsetof(Elf64_Ehdr, e_phnum), 0);
  EXPECT_FALSE(ElfError(image).empty());
}

TEST(LoadElfTest, SegmentDataPastEndOfFile) {
  auto image = SimpleElf();
  const uint64_t size = image.size();
  // Offset inside the file but data running past its end.
  Put<uint64_t>(image, PhdrAt(0) + offsetof(Elf64_Phdr, p_offset), size - 0x10);
  EXPECT_THAT(ElfError(image), HasSubstr("past the end of the file"));
  // Offset past the end.
  image = SimpleElf();
  Put<uint64_t>(image, PhdrAt(0) + offsetof(Elf64_Phdr, p_offset), size + 1);
  EXPECT_THAT(ElfError(image), HasSubstr("past the end of the file"));
  // offset + filesz overflows.
  image = SimpleElf();
  Put<uint64_t>(image, PhdrAt(0) + offsetof(Elf64_Phdr, p_offset), UINT64_MAX - 0x10);
  EXPECT_THAT(ElfError(image), HasSubstr("past the end of the file"));
  image = SimpleElf();
  Put<uint64_t>(image, PhdrAt(0) + offsetof(Elf64_Phdr, p_filesz), UINT64_MAX);
  Put<uint64_t>(image, PhdrAt(0) + offsetof(Elf64_Phdr, p_memsz), UINT64_MAX);
  EXPECT_THAT(ElfError(image), HasSubstr("past the end of the file"));
}

TEST(LoadElfTest, FileSizeLargerThanMemorySize) {
  auto image = BuildElf(0x200000, {{0x200000, Pattern(0x800, 1), 0x7ff}});
  EXPECT_THAT(ElfError(image), HasSubstr("file size larger than memory size"));
}

TEST(LoadElfTest, SegmentBelowLowestAddr) {
  auto image = BuildElf(kLowest - 0x1000, {{kLowest - 0x1000, Pattern(0x10, 1), 0x2000}});
  EXPECT_THAT(ElfError(image), HasSubstr("below"));
  image = BuildElf(0x1000, {{0, Pattern(0x10, 1), 0x2000}});
  EXPECT_THAT(ElfError(image), HasSubstr("below"));
}

TEST(LoadElfTest, SegmentBeyondRam) {
  // Runs past the end of RAM by one byte.
  auto image = BuildElf(kMemSize - 0x1000, {{kMemSize - 0x1000, Pattern(0x10, 1), 0x1001}});
  EXPECT_THAT(ElfError(image), HasSubstr("does not fit in guest RAM"));
  // Starts past the end of RAM.
  image = BuildElf(kMemSize, {{kMemSize, Pattern(0x10, 1), 0x1000}});
  EXPECT_THAT(ElfError(image), HasSubstr("does not fit in guest RAM"));
  // Larger than memory.
  image = BuildElf(kLowest, {{kLowest, Pattern(0x10, 1), 2 * kMemSize}});
  EXPECT_THAT(ElfError(image), HasSubstr("does not fit in guest RAM"));
  // Address + size wraps around.
  image = BuildElf(0x200000, {{0x200000, Pattern(0x10, 1), UINT64_MAX - 0x100000}});
  EXPECT_THAT(ElfError(image), HasSubstr("does not fit in guest RAM"));
  image = BuildElf(UINT64_MAX - 0xfff, {{UINT64_MAX - 0xfff, Pattern(0x10, 1), 0x2000}});
  EXPECT_THAT(ElfError(image), HasSubstr("does not fit in guest RAM"));
}

TEST(LoadElfTest, SegmentInTheGapBetweenRegions) {
  auto mem = MakeMemory({{0, 16 << 20}, {32 << 20, 16 << 20}});
  // Starts in the first region and runs into the hole.
  auto image = BuildElf(0x200000, {{(16 << 20) - 0x1000, Pattern(0x10, 1), 0x2000}});
  EXPECT_FALSE(LoadElf(mem, image, kLowest).ok());
}

TEST(LoadElfTest, OverlappingSegments) {
  struct Case {
    uint64_t a, a_len, b, b_len;
  } cases[] = {
      {0x200000, 0x2000, 0x200000, 0x2000},  // identical
      {0x200000, 0x2000, 0x201fff, 0x1000},  // b starts on a's last byte
      {0x201000, 0x2000, 0x200000, 0x1001},  // b ends on a's first byte
      {0x200000, 0x4000, 0x201000, 0x1000},  // b inside a
      {0x201000, 0x1000, 0x200000, 0x4000},  // a inside b
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << std::hex << c.a << "+" << c.a_len << " vs " << c.b << "+" << c.b_len);
    auto image =
        BuildElf(c.a, {{c.a, Pattern(0x10, 1), c.a_len}, {c.b, Pattern(0x10, 2), c.b_len}});
    EXPECT_THAT(ElfError(image), HasSubstr("overlaps"));
  }
}

TEST(LoadElfTest, EntryInNoSegment) {
  auto image = BuildElf(0x900000, {{0x200000, Pattern(0x10, 1), 0x1000}});
  EXPECT_THAT(ElfError(image), HasSubstr("entry point"));
  // One past the end of the segment.
  image = BuildElf(0x201000, {{0x200000, Pattern(0x10, 1), 0x1000}});
  EXPECT_THAT(ElfError(image), HasSubstr("entry point"));
}

TEST(LoadElfTest, NoLoadableSegment) {
  Segment note{0x200000, Pattern(0x10, 1), 0x10};
  note.type = PT_NOTE;
  EXPECT_THAT(ElfError(BuildElf(0x200000, {note})), HasSubstr("no loadable segment"));
  // A PT_LOAD with nothing in memory loads nothing.
  EXPECT_THAT(ElfError(BuildElf(0x200000, {{0x200000, {}, 0}})), HasSubstr("no loadable segment"));
}

TEST(LoadElfTest, NothingIsWrittenWhenALaterSegmentIsBad) {
  auto mem = MakeMemory();
  auto image = BuildElf(0x200000, {{0x200000, Pattern(0x100, 1), 0x1000},
                                   {kMemSize - 0x100, Pattern(0x10, 2), 0x1000}});
  EXPECT_FALSE(LoadElf(mem, image, kLowest).ok());
  EXPECT_EQ(ReadMem(mem, 0x200000, 0x100), std::vector<uint8_t>(0x100, 0));
}

// ---------------------------------------------------------------------------------------------
// bzImages built in the test.

struct BzParams {
  uint8_t setup_sects = 4;
  size_t kernel_size = 0x4000;
  uint16_t version = 0x020f;
  uint16_t xloadflags = XLF_KERNEL_64;
  uint8_t loadflags = LOADED_HIGH;
  uint32_t syssize = 0x4000 / 16;
  uint32_t init_size = 0x20000;
  uint32_t cmdline_size = 2047;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint16_t boot_flag = 0xaa55;
};

size_t SetupSize(const BzParams& p) {
  return (p.setup_sects == 0 ? 5 : p.setup_sects + 1) * 512u;
}

std::vector<uint8_t> KernelBytes(const BzParams& p) {
  return Pattern(p.kernel_size, 0x42);
}

std::vector<uint8_t> BuildBzImage(const BzParams& p) {
  std::vector<uint8_t> image(SetupSize(p), 0);
  setup_header h{};
  h.setup_sects = p.setup_sects;
  h.syssize = p.syssize;
  h.boot_flag = p.boot_flag;
  // A short jump over the header to 0x26c (the end of struct setup_header:
  // kernel_info_offset, the last field, is at 0x268).
  h.jump = static_cast<uint16_t>(0xeb | ((0x1f1 + sizeof(setup_header) - 0x202) << 8));
  h.header = 0x53726448;  // "HdrS"
  h.version = p.version;
  h.loadflags = p.loadflags;
  h.initrd_addr_max = p.initrd_addr_max;
  h.kernel_alignment = 0x200000;
  h.relocatable_kernel = 1;
  h.xloadflags = p.xloadflags;
  h.cmdline_size = p.cmdline_size;
  h.init_size = p.init_size;
  std::memcpy(image.data() + 0x1f1, &h, sizeof(h));
  auto kernel = KernelBytes(p);
  image.insert(image.end(), kernel.begin(), kernel.end());
  return image;
}

TEST(BzImageTest, SyntheticHeaderLayout) {
  // The test's own image must look like a real bzImage.
  auto image = BuildBzImage({});
  EXPECT_EQ(sizeof(setup_header), 0x26cu - 0x1f1u);
  EXPECT_EQ(image[0x1fe], 0x55);
  EXPECT_EQ(image[0x1ff], 0xaa);
  EXPECT_EQ(image[0x200], 0xeb);
  EXPECT_EQ(image[0x201], 0x6a);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&image[0x202]), 4), "HdrS");
  EXPECT_EQ(image[0x206], 0x0f);
  EXPECT_EQ(image[0x207], 0x02);
  EXPECT_EQ(image.size(), 5 * 512u + 0x4000u);
}

TEST(BzImageTest, LoadsAtTheLoadAddress) {
  auto mem = MakeMemory();
  BzParams p;
  auto image = BuildBzImage(p);
  auto r = LoadBzImage(mem, image, 0x100000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->format, KernelFormat::kBzImage);
  EXPECT_EQ(r->entry, 0x100200u);
  // The kernel decompresses in place and needs init_size bytes from the load address.
  EXPECT_EQ(r->end, 0x100000u + p.init_size);
  EXPECT_EQ(r->cmdline_max, 2048u);
  EXPECT_EQ(r->initrd_addr_max, 0x7fffffffu);
  EXPECT_EQ(ReadMem(mem, 0x100000, p.kernel_size), KernelBytes(p));
  // The setup sectors are not loaded.
  EXPECT_EQ(ReadMem(mem, 0x100000 - 0x1000, 0x1000), std::vector<uint8_t>(0x1000, 0));

  ASSERT_TRUE(r->bzimage_header.has_value());
  const setup_header& h = *r->bzimage_header;
  EXPECT_EQ(uint16_t{h.boot_flag}, 0xaa55);
  EXPECT_EQ(uint32_t{h.header}, 0x53726448u);
  EXPECT_EQ(uint16_t{h.version}, 0x020f);
  EXPECT_EQ(uint8_t{h.setup_sects}, 4);
  EXPECT_EQ(uint32_t{h.syssize}, p.syssize);
  EXPECT_EQ(uint32_t{h.init_size}, p.init_size);
  EXPECT_EQ(uint32_t{h.cmdline_size}, 2047u);
  EXPECT_EQ(uint16_t{h.xloadflags}, XLF_KERNEL_64);
  EXPECT_EQ(uint32_t{h.kernel_alignment}, 0x200000u);
}

TEST(BzImageTest, EndIsTheKernelSizeWhenLargerThanInitSize) {
  auto mem = MakeMemory();
  BzParams p;
  p.kernel_size = 0x8000;
  p.syssize = 0x8000 / 16;
  p.init_size = 0x1000;
  auto r = LoadBzImage(mem, BuildBzImage(p), 0x200000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->entry, 0x200200u);
  EXPECT_EQ(r->end, 0x208000u);
}

TEST(BzImageTest, ZeroSetupSectsMeansFour) {
  auto mem = MakeMemory();
  BzParams p;
  p.setup_sects = 0;
  auto image = BuildBzImage(p);
  ASSERT_EQ(image.size(), 5 * 512u + p.kernel_size);
  auto r = LoadBzImage(mem, image, 0x100000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(ReadMem(mem, 0x100000, p.kernel_size), KernelBytes(p));
}

TEST(BzImageTest, CmdlineMaxFollowsTheHeader) {
  auto mem = MakeMemory();
  BzParams p;
  p.cmdline_size = 255;
  auto r = LoadBzImage(mem, BuildBzImage(p), 0x100000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->cmdline_max, 256u);  // cmdline_size excludes the NUL
}

TEST(BzImageTest, OldestSupportedProtocolLoads) {
  auto mem = MakeMemory();
  BzParams p;
  p.version = 0x020c;
  EXPECT_TRUE(LoadBzImage(mem, BuildBzImage(p), 0x100000).ok());
}

std::string BzError(const std::vector<uint8_t>& image, uint64_t load = 0x100000) {
  auto mem = MakeMemory();
  auto r = LoadBzImage(mem, image, load);
  if (r.ok()) {
    ADD_FAILURE() << "LoadBzImage unexpectedly succeeded";
    return "";
  }
  return r.error().message();
}

TEST(BzImageTest, TooOldProtocol) {
  BzParams p;
  p.version = 0x020b;
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("too old"));
  p.version = 0x0200;
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("too old"));
}

TEST(BzImageTest, No64BitEntry) {
  BzParams p;
  p.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("XLF_KERNEL_64"));
}

TEST(BzImageTest, NotLoadedHigh) {
  BzParams p;
  p.loadflags = 0;
  EXPECT_FALSE(BzError(BuildBzImage(p)).empty());
}

TEST(BzImageTest, BadBootFlag) {
  BzParams p;
  p.boot_flag = 0x55aa;
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("boot flag"));
}

TEST(BzImageTest, SyssizeLargerThanFile) {
  BzParams p;
  p.syssize = p.kernel_size / 16 + 1;
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("truncated"));
  // Cut the file instead.
  p = BzParams{};
  auto image = BuildBzImage(p);
  image.resize(image.size() - 1);
  EXPECT_THAT(BzError(image), HasSubstr("truncated"));
}

TEST(BzImageTest, SetupCoversTheWholeFile) {
  BzParams p;
  auto image = BuildBzImage(p);
  image.resize(SetupSize(p));  // no kernel after the setup sectors
  EXPECT_THAT(BzError(image), HasSubstr("truncated"));
  // setup_sects claims more sectors than the file has.
  image = BuildBzImage(p);
  image[0x1f1] = 200;
  EXPECT_THAT(BzError(image), HasSubstr("truncated"));
}

// The 64-bit entry point is 0x200 bytes into the protected-mode kernel: a kernel that ends
// there would start the vCPU in bytes the image never provided (found by loader_fuzz).
TEST(BzImageTest, KernelEndsBeforeThe64BitEntry) {
  BzParams p;
  p.syssize = 0;
  for (uint32_t size : {16u, 0x1ffu, 0x200u}) {
    p.kernel_size = size;
    EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("64-bit entry")) << size;
    p.init_size = 0;
    EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("64-bit entry")) << size;
    p.init_size = 0x20000;
  }
  p.kernel_size = 0x201;
  auto mem = MakeMemory();
  auto r = LoadBzImage(mem, BuildBzImage(p), 0x100000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_LT(r->entry, r->end);
}

TEST(BzImageTest, TruncatedBeforeOrInsideTheHeader) {
  auto image = BuildBzImage({});
  image.resize(0x202);
  EXPECT_THAT(BzError(image), HasSubstr("truncated"));
  image = BuildBzImage({});
  image.resize(0x240);  // the jump says the header runs to 0x26c
  EXPECT_THAT(BzError(image), HasSubstr("truncated"));
  EXPECT_THAT(BzError({}), HasSubstr("truncated"));
}

TEST(BzImageTest, InitSizeBeyondRam) {
  BzParams p;
  p.init_size = kMemSize;  // from 1 MiB that ends past the 64 MiB of RAM
  EXPECT_THAT(BzError(BuildBzImage(p)), HasSubstr("increase -m"));
  // Exactly up to the end of RAM fits.
  p.init_size = kMemSize - 0x100000;
  auto mem = MakeMemory();
  auto r = LoadBzImage(mem, BuildBzImage(p), 0x100000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->end, kMemSize);
}

TEST(BzImageTest, KernelLargerThanRam) {
  auto mem = MakeMemory({{0, 2 << 20}});
  BzParams p;
  p.kernel_size = 0x180000;
  p.syssize = 0;
  p.init_size = 0;
  auto r = LoadBzImage(mem, BuildBzImage(p), 0x100000);
  EXPECT_FALSE(r.ok());
}

// ---------------------------------------------------------------------------------------------
// LoadKernel dispatch.

TEST(LoadKernelTest, DispatchesOnTheImageFormat) {
  {
    auto mem = MakeMemory();
    auto r = LoadKernel(mem, SimpleElf(), kLowest);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->format, KernelFormat::kElf);
    EXPECT_EQ(r->entry, 0x200000u);
  }
  {
    auto mem = MakeMemory();
    BzParams p;
    auto r = LoadKernel(mem, BuildBzImage(p), kLowest);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->format, KernelFormat::kBzImage);
    // A bzImage is loaded at lowest_addr.
    EXPECT_EQ(r->entry, kLowest + 0x200);
    EXPECT_EQ(ReadMem(mem, kLowest, p.kernel_size), KernelBytes(p));
  }
}

TEST(LoadKernelTest, NeitherFormatIsAnError) {
  auto mem = MakeMemory();
  for (const auto& image : {std::vector<uint8_t>{}, std::vector<uint8_t>(0x1000, 0),
                            Pattern(0x1000, 7), std::vector<uint8_t>{0x7f, 'E', 'L'}}) {
    auto r = LoadKernel(mem, image, kLowest);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message(), HasSubstr("not a kernel image"));
  }
}

TEST(LoadKernelTest, ElfErrorsComeFromTheElfLoader) {
  auto mem = MakeMemory();
  auto image = SimpleElf();
  image[EI_CLASS] = ELFCLASS32;
  auto r = LoadKernel(mem, image, kLowest);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("64-bit"));
}

// ---------------------------------------------------------------------------------------------
// LoadInitrd.

LoadedKernel KernelEndingAt(uint64_t end, uint64_t initrd_addr_max = 0x37ffffff) {
  return LoadedKernel{KernelFormat::kElf, 0x200000, end, 2048, initrd_addr_max, std::nullopt};
}

TEST(LoadInitrdTest, PlacedAtTheTopOfRamPageAligned) {
  auto mem = MakeMemory();
  auto initrd = Pattern(10000, 3);
  auto r = LoadInitrd(mem, KernelEndingAt(0x1234567), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r % 4096, 0u);
  EXPECT_GE(*r, 0x1234567u);
  EXPECT_LE(*r + initrd.size(), kMemSize);
  // The highest page-aligned address at which 10000 bytes still fit below 64 MiB.
  EXPECT_EQ(*r, kMemSize - 3 * 4096);
  EXPECT_EQ(ReadMem(mem, *r, initrd.size()), initrd);
}

TEST(LoadInitrdTest, StaysBelowInitrdAddrMax) {
  auto mem = MakeMemory();
  auto initrd = Pattern(8192, 1);
  constexpr uint64_t kMax = (32 << 20) - 1;
  auto r = LoadInitrd(mem, KernelEndingAt(0x400000, kMax), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (32u << 20) - 8192);
  EXPECT_LE(*r + initrd.size() - 1, kMax);
  EXPECT_EQ(ReadMem(mem, *r, initrd.size()), initrd);

  // A limit that is not one below a page boundary.
  constexpr uint64_t kOddMax = 0x1fff800;
  r = LoadInitrd(mem, KernelEndingAt(0x400000, kOddMax), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r % 4096, 0u);
  EXPECT_LE(*r + initrd.size() - 1, kOddMax);
  EXPECT_EQ(*r, 0x1ffd000u);  // 0x1fff800 + 1 - 8192, rounded down to a page
}

TEST(LoadInitrdTest, SkipsRegionsAboveInitrdAddrMax) {
  auto mem = MakeMemory({{0, 32 << 20}, {uint64_t{1} << 32, 32 << 20}});
  auto initrd = Pattern(4096, 1);
  auto r = LoadInitrd(mem, KernelEndingAt(0x400000), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (32u << 20) - 4096);
  // With no limit below the high region, the highest region is used.
  r = LoadInitrd(mem, KernelEndingAt(0x400000, (uint64_t{1} << 40) - 1), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (uint64_t{1} << 32) + (32 << 20) - 4096);
  EXPECT_EQ(ReadMem(mem, *r, initrd.size()), initrd);
}

TEST(LoadInitrdTest, FallsBackToALowerRegionWhenTheHighOneIsTooSmall) {
  auto mem = MakeMemory({{0, 32 << 20}, {uint64_t{1} << 32, 1 << 20}});
  auto initrd = Pattern(2 << 20, 1);
  auto r = LoadInitrd(mem, KernelEndingAt(0x400000, (uint64_t{1} << 40) - 1), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (32u << 20) - (2 << 20));
}

TEST(LoadInitrdTest, ExactFitAboveTheKernel) {
  auto mem = MakeMemory();
  auto initrd = Pattern(4 << 20, 1);
  auto r = LoadInitrd(mem, KernelEndingAt(kMemSize - (4 << 20)), initrd);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, kMemSize - (4 << 20));
}

TEST(LoadInitrdTest, TooBig) {
  auto mem = MakeMemory();
  // One byte more than the space between the kernel and the top of RAM.
  auto initrd = Pattern((4 << 20) + 1, 1);
  auto r = LoadInitrd(mem, KernelEndingAt(kMemSize - (4 << 20)), initrd);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("does not fit"));
  // The kernel's end is rounded up to a page: one byte into the page costs the page.
  auto exact = Pattern(4 << 20, 1);
  EXPECT_FALSE(LoadInitrd(mem, KernelEndingAt(kMemSize - (4 << 20) + 1), exact).ok());
  // Larger than all of RAM.
  EXPECT_FALSE(LoadInitrd(mem, KernelEndingAt(0x400000), Pattern(kMemSize, 1)).ok());
  // The kernel ends beyond RAM.
  EXPECT_FALSE(LoadInitrd(mem, KernelEndingAt(kMemSize + 0x1000), Pattern(16, 1)).ok());
}

TEST(LoadInitrdTest, EmptyIsAnError) {
  auto mem = MakeMemory();
  auto r = LoadInitrd(mem, KernelEndingAt(0x400000), {});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("empty"));
}

// ---------------------------------------------------------------------------------------------
// ReadFile.

TEST(ReadFileTest, ReadsAWholeFile) {
  char path[] = "/tmp/loader_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  auto data = Pattern(100000, 9);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  auto r = ReadFile(path);
  unlink(path);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, data);
}

TEST(ReadFileTest, MissingFileNamesThePath) {
  const std::string path = "/nonexistent/dir/vmlinux-missing";
  auto r = ReadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr(path));
  EXPECT_EQ(r.error().errnum(), ENOENT);
}

TEST(ReadFileTest, DirectoryIsAnError) {
  auto r = ReadFile("/tmp");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("/tmp"));
}

}  // namespace
}  // namespace crosvm::loader
