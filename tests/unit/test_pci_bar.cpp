// hw/pci_bar.hpp on memory-backed files standing in for BARs, in a fake sysfs device
// directory: driver detection, the read-only rule, BAR1's resource index, sized accesses.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/pci_bar.hpp"
#include "gpummu/hw/pramin.hpp"

using namespace gpummu;
using posix::PciBar;
using posix::PciDevice;

namespace {

// A throw-away sysfs-like device directory: vendor, device, class, resource, resource0/1/2 and
// an optional driver link.
struct FakeDevice {
    std::string dir;
    explicit FakeDevice(const char *driver, bool bar0_64bit = true)
    {
        char pattern[] = "/tmp/gpummu-pci-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        dir = pattern;
        write("vendor", "0x10de\n");
        write("device", "0x2204\n");
        write("class", "0x030000\n");
        const char *flags0 = bar0_64bit ? "0x0000000000140204" : "0x0000000000040200";
        write("resource", std::string("0x00000000fb000000 0x00000000fb00ffff ") + flags0 +
                              "\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                              "0x000000e000000000 0x000000e00000ffff 0x000000000014220c\n");
        std::vector<char> zeros(1 << 16, 0);
        write("resource0", std::string(zeros.begin(), zeros.end()));
        write("resource2", std::string(zeros.begin(), zeros.end()));
        if (driver != nullptr) {
            const std::string target = std::string("../../../bus/pci/drivers/") + driver;
            REQUIRE(::symlink(target.c_str(), (dir + "/driver").c_str()) == 0);
        }
    }
    ~FakeDevice() { (void)std::system(("rm -rf " + dir).c_str()); }
    void write(const char *name, const std::string &text) const
    {
        std::ofstream(dir + "/" + name, std::ios::binary) << text;
    }
    std::string read(const char *name) const
    {
        std::ifstream in(dir + "/" + name, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
};

}  // namespace

TEST_CASE("a device bound to nouveau or nvidia is opened read-only and refuses writes")
{
    for (const char *driver : {"nouveau", "nvidia"}) {
        FakeDevice fake(driver);
        auto device = PciDevice::inspect(fake.dir.c_str());
        REQUIRE(device.has_value());
        CHECK(device->driver() == driver);
        CHECK(device->vendor() == 0x10de);
        CHECK(device->class_code() == 0x030000);
        CHECK_FALSE(device->driver_allows_writes());
        const std::string before = fake.read("resource0");
        auto bar = PciBar::open_device(*device, 0, true);  // asks for writes, gets none
        REQUIRE(bar.has_value());
        CHECK_FALSE(bar->writable());
        CHECK(bar->write32(0x1700, 0x12).error() == Error::read_only_device);
        CHECK(bar->write8(0, 1).error() == Error::read_only_device);
        CHECK(bar->write64(8, 1).error() == Error::read_only_device);
        CHECK(*bar->read32(0) == 0);
        // A PRAMIN window over it cannot move: the device state stays as it was.
        auto window = Pramin<PciBar>::create(*bar, chip_records[1].window, VramAddress{1ull << 30});
        REQUIRE(window.has_value());
        CHECK(window->write64(VramAddress{64ull << 20}, 1).error() == Error::read_only_device);
        CHECK(fake.read("resource0") == before);
    }
}

TEST_CASE("vfio-pci or no driver: writes reach the BAR when asked for")
{
    for (const char *driver : {"vfio-pci", static_cast<const char *>(nullptr)}) {
        FakeDevice fake(driver);
        auto device = PciDevice::inspect(fake.dir.c_str());
        REQUIRE(device.has_value());
        CHECK(device->driver_allows_writes());
        auto read_only = PciBar::open_device(*device, 0, false);
        REQUIRE(read_only.has_value());
        CHECK(read_only->write32(0, 1).error() == Error::read_only_device);
        auto bar = PciBar::open_device(*device, 0, true);
        REQUIRE(bar.has_value());
        CHECK(bar->writable());
        REQUIRE(bar->write32(0xA00, 0x172A1000u).has_value());
        REQUIRE(bar->write16(0x10, 0xBEEF).has_value());
        REQUIRE(bar->write64(0x18, 0x0102030405060708ull).has_value());
        CHECK(*bar->read32(0xA00) == 0x172A1000u);
        CHECK(*bar->read8(0x11) == 0xBE);
        CHECK(*read_only->read64(0x18) == 0x0102030405060708ull);  // same file, shared mapping
        const std::string bytes = fake.read("resource0");
        CHECK(static_cast<unsigned char>(bytes[0xA00 + 3]) == 0x17);
        CHECK(bar->read32(2).error() == Error::misaligned);
        CHECK(bar->read64(bar->size()).error() == Error::out_of_range);
        CHECK(bar->write8(bar->size(), 0).error() == Error::out_of_range);
        // Block accesses: checked once for the run, each word lands where write64 puts it.
        const std::array<u64, 3> run{0x1111, 0x2222, 0x3333};
        REQUIRE(bar->write64_block(0x40, run).has_value());
        std::array<u64, 3> back{};
        REQUIRE(read_only->read64_block(0x40, back).has_value());
        CHECK(back == run);
        CHECK(*bar->read64(0x50) == 0x3333);
        CHECK(read_only->write64_block(0x40, run).error() == Error::read_only_device);
        CHECK(bar->write64_block(bar->size() - 16, run).error() == Error::out_of_range);
        CHECK(bar->read64_block(0x44, back).error() == Error::misaligned);
        CHECK(bar->write64_block(bar->size(), std::span<const u64>{}).has_value());
    }
}

TEST_CASE("a resource file shorter than the BAR it claims is refused, not mapped")
{
    FakeDevice device("vfio-pci");
    device.write("resource0", std::string(4096, '\0'));  // the table says 64 KiB
    auto inspected = PciDevice::inspect(device.dir.c_str());
    REQUIRE(inspected);
    auto bar0 = PciBar::open_device(*inspected, 0, false);
    CHECK(bar0.error() == Error::out_of_range);
    auto whole_file = PciBar::open_file((device.dir + "/resource0").c_str(), 0, false);
    REQUIRE(whole_file);
    CHECK(whole_file->size() == 4096);
}

TEST_CASE("BAR1 is resource 2 behind a 64-bit BAR0, else resource 1")
{
    FakeDevice wide(nullptr, true), narrow(nullptr, false);
    CHECK(PciDevice::inspect(wide.dir.c_str())->bar1_resource() == 2);
    CHECK(PciDevice::inspect(narrow.dir.c_str())->bar1_resource() == 1);
    auto device = PciDevice::inspect(wide.dir.c_str());
    CHECK(device->resource(2).size() == 64ull << 10);  // as its file: 64 KiB
    CHECK(PciBar::open_device(*device, 1, false).error() == Error::out_of_range);  // empty slot
    CHECK(PciDevice::inspect("/nonexistent/gpummu").error() == Error::device_error);
    CHECK(PciBar::open_file("/nonexistent/gpummu", 4096, false).error() == Error::device_error);
}
