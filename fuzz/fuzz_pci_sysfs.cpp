// libFuzzer target: the sysfs PCI parser and BAR mapping of hw/pci_bar.hpp on a fake device
// directory whose files hold the fuzzer's bytes: vendor, device, class, the resource table,
// the driver link's target, and a resource0 file of any length whose table entry claims any
// size. inspect() either refuses or yields 1..7 resources; writes are allowed only for no
// driver or vfio-pci; a BAR it maps reads back at every checked offset without a fault (a
// file shorter than the claimed BAR must be refused, never mapped past its end).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_stream.hpp"
#include "gpummu/hw/pci_bar.hpp"

using namespace gpummu;

namespace {

// The stand-in sysfs directory, made once and removed with its files when the run ends.
struct Directory {
    std::string path;
    Directory()
    {
        char pattern[] = "/tmp/gpummu-fuzz-sysfs.XXXXXX";
        const char *dir = ::mkdtemp(pattern);
        FUZZ_CHECK(dir != nullptr);
        path = dir;
    }
    ~Directory()
    {
        for (const char *name : {"vendor", "device", "class", "resource", "resource0"})
            (void)std::remove((path + "/" + name).c_str());
        (void)::rmdir(path.c_str());
    }
};

const std::string &directory()
{
    static const Directory made;
    return made.path;
}

void write_file(const std::string &name, const std::string &bytes)
{
    std::FILE *file = std::fopen((directory() + "/" + name).c_str(), "wb");
    FUZZ_CHECK(file != nullptr);
    if (!bytes.empty())
        FUZZ_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size());
    std::fclose(file);
}

std::string piece(fuzz::Stream &in, std::size_t most)
{
    std::string out;
    const std::size_t length = in.below(most + 1);
    for (std::size_t i = 0; i < length && !in.empty(); ++i)
        out.push_back(static_cast<char>(in.byte()));
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    write_file("vendor", in.coin() ? "0x10de\n" : piece(in, 24));
    write_file("device", piece(in, 24));
    write_file("class", in.coin() ? "0x030000\n" : piece(in, 24));
    // The resource table: well-formed lines with fuzzed numbers, or raw bytes.
    std::string table;
    if (in.coin()) {
        const unsigned lines = static_cast<unsigned>(in.below(10));
        for (unsigned i = 0; i < lines; ++i) {
            char line[96];
            const unsigned long long start = in.edge_u64(),
                                     end = in.coin() ? start + in.below(1u << 16) : in.edge_u64();
            std::snprintf(line, sizeof line, "0x%016llx 0x%016llx 0x%016llx\n", start, end,
                          static_cast<unsigned long long>(in.edge_u64()));
            table += line;
        }
    } else {
        table = piece(in, 400);
    }
    write_file("resource", table);
    // resource0: a stand-in BAR of 0..64 KiB (the table may claim more, or less).
    write_file("resource0", std::string(in.below(65537), '\x5a'));
    const std::string link = directory() + "/driver";
    ::unlink(link.c_str());
    static const char *const drivers[] = {"", "../../bus/pci/drivers/nvidia",
                                          "../../bus/pci/drivers/vfio-pci", "nouveau"};
    const char *driver = drivers[in.below(4)];
    if (*driver != '\0') FUZZ_CHECK(::symlink(driver, link.c_str()) == 0);

    auto device = posix::PciDevice::inspect(directory().c_str());
    if (!device) return 0;
    FUZZ_CHECK(device->resource_count() >= 1 && device->resource_count() <= 7);
    FUZZ_CHECK(device->bar1_resource() == 1 || device->bar1_resource() == 2);
    const std::string_view name = device->driver();
    FUZZ_CHECK(device->driver_allows_writes() == (name.empty() || name == "vfio-pci"));
    auto bar = posix::PciBar::open_device(*device, 0, in.coin());
    if (!bar) return 0;
    FUZZ_CHECK(!bar->writable() || device->driver_allows_writes());
    const u64 bytes = bar->size();
    for (u64 offset : {u64{0}, (bytes / 2) & ~u64{7}, bytes >= 8 ? (bytes - 8) & ~u64{7} : 0}) {
        auto word = bar->read64(offset);
        if (bytes >= 8) FUZZ_CHECK(word.has_value());
    }
    FUZZ_CHECK(!bar->read64(bytes).has_value());
    return 0;
}
