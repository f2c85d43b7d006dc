// gpummu/core/deferred.hpp: storage for an object constructed after its owner.
//
// What it does
//   `Deferred<T>` holds room for one T that is built later with `emplace(...)` (objects that
//   are not default-constructible and must not move once built, such as a page table whose
//   page source lives next to it). `reset()` destroys it. No heap.
//
// What it does not do
//   - Accessing an empty Deferred is a caller bug (GPUMMU_ASSERT in debug builds).
//   - It is neither copyable nor movable: its owner is pinned too.
#pragma once

#include <memory>
#include <utility>

#include "gpummu/core/config.hpp"

namespace gpummu {

template <class T>
class Deferred {
public:
    Deferred() noexcept {}
    ~Deferred() { reset(); }
    Deferred(const Deferred &) = delete;
    Deferred &operator=(const Deferred &) = delete;

    template <class... Arguments>
    T &emplace(Arguments &&...arguments) noexcept
    {
        reset();
        std::construct_at(&value_, std::forward<Arguments>(arguments)...);
        engaged_ = true;
        return value_;
    }
    void reset() noexcept
    {
        if (engaged_) std::destroy_at(&value_);
        engaged_ = false;
    }
    [[nodiscard]] bool engaged() const noexcept { return engaged_; }
    T &operator*() noexcept
    {
        GPUMMU_ASSERT(engaged_);
        return value_;
    }
    const T &operator*() const noexcept
    {
        GPUMMU_ASSERT(engaged_);
        return value_;
    }
    T *operator->() noexcept { return &**this; }
    const T *operator->() const noexcept { return &**this; }

private:
    union {
        T value_;
    };
    bool engaged_ = false;
};

}  // namespace gpummu
