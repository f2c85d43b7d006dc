// gpummu/hw/pci_bar.hpp: a PCI BAR of a real device (or a file standing in for one).
//
// The only header that is not freestanding: it uses POSIX open/mmap/readlink.
//
// What it does
//   - `PciDevice::inspect(dir)` reads a sysfs device directory (/sys/bus/pci/devices/BDF or
//     a copy of one): vendor, device and class ids, the `driver` link's name, and the BAR
//     table from the `resource` file (start, end, flags per line). `bar1_resource()` finds
//     BAR1's resource file: resource1, or resource2 when BAR0 is a 64-bit BAR (flag
//     IORESOURCE_MEM_64, 0x00100000) and so takes two slots.
//   - `PciBar` maps one resource file (or any file given as a stand-in) and is a BarIo:
//     every access is one volatile load or store of its width, bounds- and alignment-checked.
//   - Safety: `PciBar::open_device` opens the BAR read-only (O_RDONLY, PROT_READ) when the
//     device's `driver` link names a kernel driver other than vfio-pci (nvidia, nouveau, ...),
//     or when the caller asks for read-only; every write is then Error::read_only_device and
//     nothing reaches the device. Writes are possible only for a device bound to vfio-pci or
//     to no driver, and only when asked for.
//
// What it does not do
//   - No VFIO ioctls, no bus mastering, no BAR resizing, no locking.
//   - It cannot make a write safe: on a device it may write to, the caller decides what is
//     written (gpummu writes only the registers named in the README).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu::posix {

inline constexpr u64 resource_mem_64 = 0x00100000;  // IORESOURCE_MEM_64

struct PciResource {
    u64 start = 0, end = 0, flags = 0;
    [[nodiscard]] u64 size() const noexcept { return end > start ? end - start + 1 : 0; }
};

class PciDevice {
public:
    static constexpr std::size_t max_resources = 7;

    [[nodiscard]] static Result<PciDevice> inspect(const char *directory) noexcept
    {
        PciDevice device;
        if (std::snprintf(device.directory_.data(), device.directory_.size(), "%s", directory) >=
            static_cast<int>(device.directory_.size()))
            return failure(Error::invalid_argument);
        device.vendor_ = static_cast<u32>(device.read_number("vendor"));
        device.device_ = static_cast<u32>(device.read_number("device"));
        device.class_ = static_cast<u32>(device.read_number("class"));
        // The driver link: absent when no driver is bound.
        std::array<char, 512> path{}, target{};
        device.join(path, "driver");
        const ssize_t length = ::readlink(path.data(), target.data(), target.size() - 1);
        if (length > 0) {
            std::string_view link(target.data(), static_cast<std::size_t>(length));
            const std::size_t slash = link.rfind('/');
            link = slash == std::string_view::npos ? link : link.substr(slash + 1);
            std::snprintf(device.driver_.data(), device.driver_.size(), "%.*s",
                          static_cast<int>(link.size()), link.data());
        }
        // resource: one "0xSTART 0xEND 0xFLAGS" line per resource.
        device.join(path, "resource");
        std::FILE *file = std::fopen(path.data(), "r");
        if (file == nullptr) return failure(Error::device_error);
        unsigned long long start = 0, end = 0, flags = 0;
        while (device.resource_count_ < max_resources &&
               std::fscanf(file, "%llx %llx %llx", &start, &end, &flags) == 3)
            device.resources_[device.resource_count_++] = {start, end, flags};
        std::fclose(file);
        if (device.resource_count_ == 0) return failure(Error::malformed_record);
        return device;
    }

    [[nodiscard]] u32 vendor() const noexcept { return vendor_; }
    [[nodiscard]] u32 device() const noexcept { return device_; }
    [[nodiscard]] u32 class_code() const noexcept { return class_; }
    [[nodiscard]] std::string_view driver() const noexcept { return driver_.data(); }
    [[nodiscard]] bool driver_allows_writes() const noexcept
    {
        return driver().empty() || driver() == "vfio-pci";
    }
    [[nodiscard]] const char *directory() const noexcept { return directory_.data(); }
    [[nodiscard]] std::size_t resource_count() const noexcept { return resource_count_; }
    [[nodiscard]] const PciResource &resource(std::size_t index) const noexcept
    {
        return resources_[index];
    }
    // BAR1 follows BAR0; a 64-bit BAR0 occupies resources 0 and 1.
    [[nodiscard]] unsigned bar1_resource() const noexcept
    {
        return (resources_[0].flags & resource_mem_64) != 0 ? 2u : 1u;
    }

    // `directory/name` into `out`.
    void join(std::array<char, 512> &out, const char *name) const noexcept
    {
        std::snprintf(out.data(), out.size(), "%s/%s", directory_.data(), name);
    }

private:
    [[nodiscard]] u64 read_number(const char *name) const noexcept
    {
        std::array<char, 512> path{};
        join(path, name);
        std::FILE *file = std::fopen(path.data(), "r");
        if (file == nullptr) return 0;
        unsigned long long value = 0;
        if (std::fscanf(file, "%llx", &value) != 1) value = 0;
        std::fclose(file);
        return value;
    }

    std::array<char, 256> directory_{};
    std::array<char, 64> driver_{};
    u32 vendor_ = 0, device_ = 0, class_ = 0;
    std::array<PciResource, max_resources> resources_{};
    std::size_t resource_count_ = 0;
};

class PciBar {
public:
    PciBar(const PciBar &) = delete;
    PciBar &operator=(const PciBar &) = delete;
    PciBar(PciBar &&other) noexcept
        : base_(std::exchange(other.base_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          descriptor_(std::exchange(other.descriptor_, -1)),
          writable_(other.writable_)
    {
    }
    ~PciBar() { close(); }

    // Any file as a BAR: `size` bytes from its start (0: the file's size). A file shorter
    // than `size` is out_of_range: mapping past its end would fault (SIGBUS) on access.
    [[nodiscard]] static Result<PciBar> open_file(const char *path, u64 size,
                                                  bool writable) noexcept
    {
        const int descriptor = ::open(path, writable ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
        if (descriptor < 0)
            return failure(errno == EACCES ? Error::read_only_device : Error::device_error);
        struct stat status {};
        if (::fstat(descriptor, &status) != 0 || status.st_size <= 0) {
            ::close(descriptor);
            return failure(Error::device_error);
        }
        const u64 file_size = static_cast<u64>(status.st_size);
        if (size == 0) size = file_size;
        if (file_size < size) {  // sysfs resource files report the BAR's length
            ::close(descriptor);
            return failure(Error::out_of_range);
        }
        void *base = ::mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                            MAP_SHARED, descriptor, 0);
        if (base == MAP_FAILED) {
            ::close(descriptor);
            return failure(Error::device_error);
        }
        return PciBar(static_cast<unsigned char *>(base), size, descriptor, writable);
    }

    // resource`index` of a device; writable only if asked for AND the driver allows it.
    [[nodiscard]] static Result<PciBar> open_device(const PciDevice &device, unsigned index,
                                                    bool want_write) noexcept
    {
        if (index >= device.resource_count() || device.resource(index).size() == 0)
            return failure(Error::out_of_range);
        std::array<char, 512> path{};
        std::array<char, 32> name{};
        std::snprintf(name.data(), name.size(), "resource%u", index);
        device.join(path, name.data());
        return open_file(path.data(), device.resource(index).size(),
                         want_write && device.driver_allows_writes());
    }

    [[nodiscard]] bool writable() const noexcept { return writable_; }
    [[nodiscard]] u64 size() const noexcept { return size_; }

    Result<u8> read8(u64 offset) noexcept { return load<u8>(offset); }
    Result<u16> read16(u64 offset) noexcept { return load<u16>(offset); }
    Result<u32> read32(u64 offset) noexcept { return load<u32>(offset); }
    Result<u64> read64(u64 offset) noexcept { return load<u64>(offset); }
    Result<void> write8(u64 offset, u8 value) noexcept { return store(offset, value); }
    Result<void> write16(u64 offset, u16 value) noexcept { return store(offset, value); }
    Result<void> write32(u64 offset, u32 value) noexcept { return store(offset, value); }
    Result<void> write64(u64 offset, u64 value) noexcept { return store(offset, value); }
    // BarBlockIo: the run is checked once; each word is still one volatile access.
    Result<void> read64_block(u64 offset, std::span<u64> out) noexcept
    {
        GPUMMU_TRY(check_run(offset, out.size()));
        auto *at = reinterpret_cast<volatile const u64 *>(base_ + offset);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = at[i];
        return success();
    }
    Result<void> write64_block(u64 offset, std::span<const u64> in) noexcept
    {
        GPUMMU_TRY(check_run(offset, in.size()));
        if (!writable_) return failure(Error::read_only_device);
        auto *at = reinterpret_cast<volatile u64 *>(base_ + offset);
        for (std::size_t i = 0; i < in.size(); ++i) at[i] = in[i];
        return success();
    }

private:
    PciBar(unsigned char *base, u64 size, int descriptor, bool writable) noexcept
        : base_(base),
          size_(size),
          descriptor_(descriptor),
          writable_(writable)
    {
    }
    void close() noexcept
    {
        if (base_ != nullptr) ::munmap(base_, size_);
        if (descriptor_ >= 0) ::close(descriptor_);
        base_ = nullptr;
        descriptor_ = -1;
    }
    [[nodiscard]] Result<void> check(u64 offset, std::size_t width) const noexcept
    {
        if (base_ == nullptr) return failure(Error::device_error);
        if (offset % width != 0) return failure(Error::misaligned);
        if (offset >= size_ || size_ - offset < width) return failure(Error::out_of_range);
        return success();
    }
    [[nodiscard]] Result<void> check_run(u64 offset, std::size_t words) const noexcept
    {
        if (words == 0) return success();
        GPUMMU_TRY(check(offset, 8));
        if (words > (size_ - offset) / 8) return failure(Error::out_of_range);
        return success();
    }
    // One access of the full width: MMIO must not be split or merged.
    template <class T>
    Result<T> load(u64 offset) noexcept
    {
        GPUMMU_TRY(check(offset, sizeof(T)));
        const T value = *reinterpret_cast<volatile const T *>(base_ + offset);
        return value;
    }
    template <class T>
    Result<void> store(u64 offset, T value) noexcept
    {
        GPUMMU_TRY(check(offset, sizeof(T)));
        if (!writable_) return failure(Error::read_only_device);
        *reinterpret_cast<volatile T *>(base_ + offset) = value;
        return success();
    }

    unsigned char *base_ = nullptr;
    u64 size_ = 0;
    int descriptor_ = -1;
    bool writable_ = false;
};

}  // namespace gpummu::posix
