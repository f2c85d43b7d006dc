// gpummu-probe: identify a real NVIDIA GPU, read-only.
//
//   gpummu-probe [--device BDF] [--sysfs DIR]
//
// Opens BAR0 (resource0) of the device READ-ONLY, whatever driver owns it, and never writes:
// reads BOOT_0 and BOOT_42, decodes the chip, and reads the PRAMIN window register of that
// architecture. Prints the driver, the BAR sizes (from sysfs), the chip (architecture,
// implementation, revision), the MMU version and page sizes, and the window's current base.
// Default device: the first NVIDIA (vendor 0x10de) display or 3D controller (class 0x03xxxx)
// under --sysfs (default /sys/bus/pci/devices).
// Exit status: 0; 1 for a chip gpummu does not know; 2 for bad arguments; 3 when there is no
// device or no permission to read it (reading resource0 needs root).
#include <dirent.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/pci_bar.hpp"

namespace {

using namespace gpummu;

constexpr int exit_unknown_chip = 1, exit_usage = 2, exit_no_device = 3;

std::string find_nvidia_gpu(const std::string &sysfs)
{
    DIR *directory = ::opendir(sysfs.c_str());
    if (directory == nullptr) return {};
    std::string found;
    while (const dirent *entry = ::readdir(directory)) {
        if (entry->d_name[0] == '.') continue;
        auto device = posix::PciDevice::inspect((sysfs + "/" + entry->d_name).c_str());
        if (!device || device->vendor() != 0x10de || (device->class_code() >> 16) != 0x03) continue;
        if (found.empty() || std::strcmp(entry->d_name, found.c_str()) < 0) found = entry->d_name;
    }
    ::closedir(directory);
    return found;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string sysfs = "/sys/bus/pci/devices";
    std::string bdf;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        if ((argument == "--device" || argument == "--sysfs") && i + 1 < argc) {
            (argument == "--device" ? bdf : sysfs) = argv[++i];
        } else if (argument == "--help" || argument == "-h") {
            std::puts("usage: gpummu-probe [--device BDF] [--sysfs DIR]  (read-only)");
            return 0;
        } else {
            std::fprintf(stderr,
                         "gpummu-probe: unknown argument '%s'\nusage: gpummu-probe "
                         "[--device BDF] [--sysfs DIR]\n",
                         argv[i]);
            return exit_usage;
        }
    }
    struct stat status {};
    if (::stat(sysfs.c_str(), &status) != 0 || !S_ISDIR(status.st_mode)) {
        std::fprintf(stderr,
                     "gpummu-probe: %s is not a directory (--sysfs names the PCI devices "
                     "directory, /sys/bus/pci/devices by default)\n",
                     sysfs.c_str());
        return exit_usage;
    }
    if (bdf.empty()) bdf = find_nvidia_gpu(sysfs);
    if (bdf.empty()) {
        std::fprintf(stderr, "gpummu-probe: no NVIDIA display or 3D controller under %s\n",
                     sysfs.c_str());
        return exit_no_device;
    }
    const std::string directory = sysfs + "/" + bdf;
    auto device = posix::PciDevice::inspect(directory.c_str());
    if (!device) {
        std::fprintf(stderr, "gpummu-probe: cannot read %s: %s\n", directory.c_str(),
                     error_message(device.error()));
        return exit_no_device;
    }
    std::printf("device %s: vendor 0x%04x device 0x%04x class 0x%06x, driver %s\n", bdf.c_str(),
                device->vendor(), device->device(), device->class_code(),
                device->driver().empty() ? "(none)" : std::string(device->driver()).c_str());
    const unsigned bar1 = device->bar1_resource();
    std::printf("BAR0 %" PRIu64 " MiB, BAR1 (resource%u) %" PRIu64 " MiB\n",
                device->resource(0).size() >> 20, bar1,
                bar1 < device->resource_count() ? device->resource(bar1).size() >> 20 : 0);
    // Read-only, always: the probe never asks for write access.
    auto bar0 = posix::PciBar::open_device(*device, 0, false);
    if (!bar0) {
        std::fprintf(stderr, "gpummu-probe: cannot map %s/resource0 read-only (%s); run as root\n",
                     directory.c_str(), error_message(bar0.error()));
        return exit_no_device;
    }
    auto boot0 = bar0->read32(boot_registers::boot_0);
    auto boot42 = bar0->read32(boot_registers::boot_42);
    if (!boot0 || !boot42) {
        std::fprintf(stderr, "gpummu-probe: BAR0 is too small to hold BOOT_42\n");
        return exit_no_device;
    }
    auto identified = identify_chip(*boot0, *boot42);
    if (!identified) {
        std::fprintf(stderr, "gpummu-probe: BOOT_0 0x%08x, BOOT_42 0x%08x: %s\n", *boot0, *boot42,
                     error_message(identified.error()));
        return exit_no_device;
    }
    const ChipId id = *identified;
    std::printf("BOOT_0 0x%08x, BOOT_42 0x%08x: architecture 0x%02x, implementation 0x%x, "
                "revision %X%X, chip id 0x%03x (from BOOT_%s)\n",
                *boot0, *boot42, id.architecture_code, id.implementation, id.major_revision,
                id.minor_revision, id.chip_id(), id.from_boot42 ? "42" : "0");
    auto record = chip_record(id);
    if (!record) {
        std::printf("architecture: unknown to gpummu (%s)\n", error_message(record.error()));
        return exit_unknown_chip;
    }
    std::printf("architecture %s, MMU %s, page sizes:", record->name,
                mmu_version_name(record->mmu_version));
    for (unsigned shift : {12u, 16u, 21u, 29u, 38u})
        if (record->page_sizes.contains(PageSize::from_shift(shift).value()))
            std::printf(" %s", shift == 12   ? "4K"
                               : shift == 16 ? "64K"
                               : shift == 21 ? "2M"
                               : shift == 29 ? "512M"
                                             : "256G");
    std::printf("\n");
    auto window = bar0->read32(record->window.offset);
    if (window) {
        const u64 base = (u64{*window} & ((u64{1} << record->window.base_bits) - 1))
                         << record->window.base_shift;
        std::printf("PRAMIN window register 0x%06x = 0x%08x: base 0x%" PRIx64,
                    record->window.offset, *window, base);
        if (record->window.has_target)
            std::printf(", target %s", ((*window >> record->window.target_low) & 3u) == 0
                                           ? "VRAM"
                                           : "system memory");
        std::printf("\n");
    }
    std::printf("nothing was written (BAR0 mapped read-only)\n");
    return 0;
}
