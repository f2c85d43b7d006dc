// gpummu/alloc/buddy.hpp: the VRAM buddy allocator.
//
// What it does
//   - Manages the usable VRAM regions firmware reports (one or more [base, end) ranges,
//     chunk-aligned, of any size) in power-of-two blocks of `chunk << order` bytes, every
//     block aligned to its own size in physical addresses (so a 2 MiB block can back a
//     2 MiB page).
//   - allocate(size, options, out): one run of memory (contiguous) or several blocks (the
//     default), with a minimum block size, an alignment larger than the size, an address
//     window, bottom-up or top-down placement, and a preference for memory known to be
//     zero. Blocks are written into a caller-supplied span: no heap. Each block says
//     whether it was handed out cleared.
//   - free(blocks, cleared), trim(blocks, new size), reserve(exact range), stats(),
//     set_aside(chunks) (a promise of single chunks for later: other requests may not eat
//     into them, and an allocation `from_set_aside` cannot then fail for lack of memory),
//     reset_clear(cleared) (all free memory becomes cleared or dirty), block_at(address) and
//     block_state_at(address) (the free or allocated block there and its kind: a VRAM map).
//   - check_invariants(): a full audit for tests and debug builds.
//
// No false refusals
//   allocate() fails with out_of_memory only when no set of blocks meeting the options
//   exists in the free chunks, whatever their cleared state:
//     contiguous: no free run of the size inside one region and the window whose start is
//       aligned to `alignment` (or the minimum block; a power-of-two size comes back as one
//       naturally aligned block whenever such a block is free);
//     scattered: no set of blocks, each a power of two >= the minimum block, aligned to its
//       size and to `alignment`, free and inside one region and the window, summing to the
//       size rounded up to the minimum block.
//   The common case is a fast search over whole free blocks of one kind (O(log N)); when it
//   fails, an exact search walks the free runs (see "the exact search" below for its bound)
//   and collects blocks of both kinds on demand: a block made of cleared and dirty chunks
//   is handed out dirty, and the cleared bytes drop by exactly the cleared chunks it took.
//   Memory that is not free is never a placement; memory outside the regions never is.
//
// How (metadata is fixed, computed up front by metadata_words(), supplied by the caller)
//   For every order k the tree level holds one 2-bit state per aligned 2^k-chunk node:
//
//       order 2   [ N ][ F ]                 N none: split, covered by a bigger block,
//       order 1   [ A ][ N ][ . ][ . ]           or outside every region
//       order 0   [.][.][F][C][.][.][.][.]   A allocated block   F free, dirty
//                                            C free, known zero (cleared)
//   Free blocks of each order and kind are found through a hierarchy of summary bitmaps
//   (bit i of level L+1 says "word i of level L has a set bit"), so finding the first or
//   last free block in an address window costs O(log N) word operations; a per-kind mask
//   of non-empty orders picks the smallest order that fits with one bit scan. allocate and
//   free touch O(orders) nodes: O(log N) in the number of chunks, independent of how many
//   blocks are allocated. When an order holds a single free block of a kind, the block
//   is kept in a per-order slot (lone_) and the summaries above level 0 stay empty, so
//   an order going between none and one free block never walks them. Metadata: 2 bits per node of
//   order >= 1, and 3 bits per pair of order-0 siblings (only 8 of their 16 combinations can hold,
//   see "order-0 pairs"), so 3.5 bits per chunk: 1.82 MiB for 16 GiB of 4 KiB chunks with the
//   summaries (~3%). Regions far apart share one index space over their hull; the gaps cost
//   metadata but are never handed out; regions that touch are joined into one.
//
// Invariants (check_invariants() proves them)
//   - Every chunk of every region lies in exactly one block, free or allocated.
//   - Two free buddies of the same kind never coexist: they merge. A cleared and a dirty
//     buddy do not merge by themselves, so cleared memory stays known as cleared until a
//     request needs them together (then the allocated block is dirty). Blocks and
//     contiguous runs never cross a gap between regions (regions that touch are one).
//   - The counters, non-empty masks and summaries agree with the node states.
//
// Limits
//   At most max_chunks (2^35) chunks from the first region's start to the last region's
//   end (128 TiB of 4 KiB chunks, 2 PiB of 64 KiB chunks); a larger space is refused with
//   space_too_large. At most 16 regions.
//
// What it does not do
//   - No locking: the owner serialises calls. No clearing of memory: "cleared" is the
//     caller's statement when freeing. Blocks are returned in an order suited to the
//     request, not sorted.
//   - Errors leave the allocator exactly as it was (multi-block operations roll back).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

struct BuddyBlock {
    VramAddress address{};
    u64 size = 0;          // bytes, a power of two >= the chunk size
    bool cleared = false;  // allocate/reserve: every byte was known to be zero when handed out
                           // (free/trim ignore it; block_at cannot know it and says false)
    constexpr bool operator==(const BuddyBlock &) const noexcept = default;
};

struct BuddyOptions {
    u64 min_block_size = 0;       // every block at least this big and aligned to it (0: chunk)
    u64 alignment = 0;            // block addresses aligned to this (0: own size); for a
                                  // contiguous request, the start of the run
    VramAddress window_begin{0};  // only blocks inside [window_begin, window_end)
    VramAddress window_end{~u64{0}};
    bool top_down = false;        // highest address that fits (default: best fit, low first)
    bool contiguous = false;      // one run of memory (a single block if size is a power of two)
    bool prefer_cleared = false;  // take memory known to be zero first (else dirty first)
    bool from_set_aside = false;  // one chunk drawn from what set_aside() promised: it cannot
                                  // fail for lack of memory (no window, alignment or size
                                  // beyond one chunk)
};

// What holds an address (block_state_at): an allocated block, or a free one and its kind.
enum class BuddyBlockState : u8 { allocated, free_cleared, free_dirty };
struct BuddyBlockAt {
    BuddyBlock block;
    BuddyBlockState state = BuddyBlockState::allocated;
};

// The blocks of one request: a view into the span the caller passed to allocate/reserve.
struct BuddyAllocation {
    std::span<BuddyBlock> blocks;
    u64 size = 0;  // bytes allocated (the request rounded up to the chunk / minimum block)
};

struct BuddyStats {
    static constexpr unsigned max_orders = 48;
    u64 chunk_bytes = 0;
    u64 total_bytes = 0;
    u64 free_bytes = 0;
    u64 cleared_bytes = 0;       // free bytes known to be zero
    u64 set_aside_bytes = 0;     // free bytes promised by set_aside() (part of free_bytes)
    u64 largest_free_block = 0;  // bytes
    unsigned order_count = 0;    // orders 0 .. order_count-1 exist
    std::array<u64, max_orders> free_bytes_per_order{};
};

namespace detail {
// Node states of the buddy tree (BuddyAllocator's none / allocated / free dirty / free
// cleared) and the 3-bit code of an order-0 sibling pair; the table is explained in
// BuddyAllocator under "order-0 pairs".
inline constexpr u64 buddy_none = 0, buddy_allocated = 1, buddy_free_dirty = 2,
                     buddy_free_clean = 3;
constexpr unsigned buddy_pair_state(unsigned code, unsigned side) noexcept
{
    constexpr u64 sides[8][2] = {{buddy_none, buddy_none},
                                 {buddy_free_dirty, buddy_allocated},
                                 {buddy_allocated, buddy_free_dirty},
                                 {buddy_free_dirty, buddy_free_clean},
                                 {buddy_allocated, buddy_allocated},
                                 {buddy_free_clean, buddy_allocated},
                                 {buddy_allocated, buddy_free_clean},
                                 {buddy_free_clean, buddy_free_dirty}};
    return static_cast<unsigned>(sides[code][side]);
}
// A side that is none while the other is not is stored as allocated.
constexpr unsigned buddy_pair_code(u64 left, u64 right) noexcept
{
    if (left == buddy_none && right == buddy_none) return 0;
    if (left == buddy_none) left = buddy_allocated;
    if (right == buddy_none) right = buddy_allocated;
    unsigned left_free = left >= buddy_free_dirty ? 1u : 0u;
    unsigned right_free = right >= buddy_free_dirty ? 1u : 0u;
    if (!left_free && !right_free) return 4;  // both allocated
    unsigned kind_bit = left_free ? static_cast<unsigned>(left == buddy_free_clean)
                                  : static_cast<unsigned>(right == buddy_free_clean);
    return kind_bit << 2 | right_free << 1 | left_free;
}
constexpr bool buddy_pair_codes_round_trip() noexcept
{
    for (u64 left = 0; left < 4; ++left)
        for (u64 right = 0; right < 4; ++right) {
            if ((left == buddy_none) != (right == buddy_none)) continue;
            if (left >= buddy_free_dirty && left == right) continue;  // merged, never stored
            unsigned code = buddy_pair_code(left, right);
            if (code > 7 || buddy_pair_state(code, 0) != left || buddy_pair_state(code, 1) != right)
                return false;
        }
    // The 8 codes are distinct: 0 and the 7 block pairs.
    return buddy_pair_code(buddy_allocated, buddy_allocated) == 4 &&
           buddy_pair_code(buddy_free_clean, buddy_free_dirty) == 7;
}
static_assert(buddy_pair_codes_round_trip(), "the 8 pair codes decode to what encoded them");

// Freeing side `side` of a pair with code `code`, as cleared or dirty memory, in 4 bits.
// Bit 3 (buddy_side_allocated): the side is allocated; only then may it be freed, and the
// low bits hold the pair's code afterwards: 0 when the buddy is free of the same kind (the
// pair merges away into its order-1 parent; no pair that stays has code 0), else the code
// with the side free beside its buddy.
inline constexpr unsigned buddy_side_allocated = 8;
constexpr unsigned buddy_release_entry(unsigned code, unsigned side, bool cleared) noexcept
{
    if (buddy_pair_state(code, side) != buddy_allocated) return 0;
    const u64 freed = cleared ? buddy_free_clean : buddy_free_dirty;
    const u64 buddy = buddy_pair_state(code, side ^ 1u);
    if (buddy == freed) return buddy_side_allocated;
    return buddy_side_allocated |
           (side == 0 ? buddy_pair_code(freed, buddy) : buddy_pair_code(buddy, freed));
}
// Every entry, decoded: a side that is not allocated is refused; a merge happens exactly
// when the buddy is free of the freed kind; otherwise the new code reads the freed side as
// free of that kind and the buddy unchanged.
constexpr bool buddy_release_entries_decode() noexcept
{
    for (unsigned code = 0; code < 8; ++code)
        for (unsigned side = 0; side < 2; ++side)
            for (bool cleared : {false, true}) {
                unsigned entry = buddy_release_entry(code, side, cleared);
                bool allocated = buddy_pair_state(code, side) == buddy_allocated;
                if (((entry & buddy_side_allocated) != 0) != allocated) return false;
                if (!allocated) continue;
                const u64 freed = cleared ? buddy_free_clean : buddy_free_dirty;
                const u64 buddy = buddy_pair_state(code, side ^ 1u);
                unsigned written = entry & 7u;
                if ((written == 0) != (buddy == freed)) return false;
                if (written != 0 && (buddy_pair_state(written, side) != freed ||
                                     buddy_pair_state(written, side ^ 1u) != buddy))
                    return false;
            }
    return true;
}
static_assert(buddy_release_entries_decode(), "a pair's release entries decode to the free");
static_assert(buddy_release_entry(4, 0, false) == (buddy_side_allocated | 1u) &&     // A A: FD A
                  buddy_release_entry(2, 0, false) == buddy_side_allocated &&        // A FD: merge
                  buddy_release_entry(2, 0, true) == (buddy_side_allocated | 7u) &&  // FC FD
                  buddy_release_entry(5, 1, true) == buddy_side_allocated &&         // FC A: merge
                  buddy_release_entry(5, 0, true) == 0 &&  // a free side is refused
                  buddy_release_entry(0, 1, false) == 0,   // so is a side covered by a block
              "freeing one side of a pair: merged, written beside its buddy, or refused");

// The largest order L <= top whose aligned block of 2^L chunks around `chunk` lies inside
// [first, end) (first <= chunk < end). The block of order L starts at or after `first` iff
// chunk and first - 1 differ in a bit >= L (first == 0 wraps to all ones: always), and it
// ends at or before `end` iff chunk and end differ in a bit >= L: so L is the lower of the
// two highest differing bits.
constexpr unsigned merge_limit_of(u64 chunk, u64 first, u64 end, unsigned top) noexcept
{
    auto by_start = static_cast<unsigned>(std::bit_width(chunk ^ (first - 1))) - 1u;
    auto by_end = static_cast<unsigned>(std::bit_width(chunk ^ end)) - 1u;
    return std::min({top, by_start, by_end});
}
// (tests/unit/test_buddy.cpp checks it against the definition for every region and chunk
// of a small space.)
static_assert(merge_limit_of(5, 0, 16, 35) == 4);   // the whole region is one block
static_assert(merge_limit_of(5, 4, 16, 35) == 2);   // [4, 8) fits, [0, 8) does not
static_assert(merge_limit_of(5, 5, 16, 35) == 0);   // its buddy, chunk 4, is outside
static_assert(merge_limit_of(14, 0, 15, 35) == 0);  // [14, 16) ends past the region
static_assert(merge_limit_of(13, 0, 15, 35) == 1);  // [12, 14) fits, [12, 16) ends past it
static_assert(merge_limit_of(5, 0, u64{1} << 35, 35) == 35);
static_assert(merge_limit_of((u64{1} << 35) - 1, 1, u64{1} << 35, 35) == 34);
}  // namespace detail

class BuddyAllocator {
public:
    static constexpr std::size_t max_regions = 16;
    static constexpr unsigned max_orders = BuddyStats::max_orders;
    // The most chunks from the first region's start to the last region's end: 2^35, so
    // 128 TiB of 4 KiB chunks or 2 PiB of 64 KiB chunks (six summary levels of 64 bits over
    // 32 nodes per word). A larger space is refused with space_too_large, never wrapped.
    static constexpr u64 max_chunks = u64{1} << 35;

    // Words of metadata storage create() needs for these regions.
    [[nodiscard]] static Result<std::size_t> metadata_words(std::span<const VramRange> regions,
                                                            u64 chunk_bytes = 4096) noexcept
    {
        Layout layout;
        if (auto planned = plan(regions, chunk_bytes, layout); !planned)
            return failure(planned.error());
        return layout.total_words;
    }

    [[nodiscard]] static Result<BuddyAllocator> create(std::span<const VramRange> regions,
                                                       std::span<u64> storage,
                                                       u64 chunk_bytes = 4096) noexcept
    {
        BuddyAllocator allocator;
        if (auto planned = plan(regions, chunk_bytes, allocator.layout_); !planned)
            return failure(planned.error());
        if (storage.size() < allocator.layout_.total_words) return failure(Error::out_of_memory);
        allocator.words_ = storage.data();
        for (std::size_t i = 0; i < allocator.layout_.total_words; ++i) storage[i] = 0;
        // Every region starts as its maximal aligned blocks, free and of unknown content.
        for (std::size_t r = 0; r < allocator.layout_.region_count; ++r) {
            u64 chunk = allocator.layout_.region_first[r];
            u64 end = allocator.layout_.region_end[r];
            while (chunk < end) {
                unsigned order =
                    largest_order_at(chunk, end - chunk, allocator.layout_.order_count);
                allocator.insert_free(order, chunk >> order, dirty);
                chunk += u64{1} << order;
            }
        }
        return allocator;
    }

    BuddyAllocator(BuddyAllocator &&) noexcept = default;
    BuddyAllocator &operator=(BuddyAllocator &&) noexcept = default;
    BuddyAllocator(const BuddyAllocator &) = delete;
    BuddyAllocator &operator=(const BuddyAllocator &) = delete;

    [[nodiscard]] u64 chunk_bytes() const noexcept { return u64{1} << layout_.chunk_shift; }
    [[nodiscard]] u64 free_bytes() const noexcept { return free_chunks_ << layout_.chunk_shift; }
    // Free bytes an ordinary request may take: the free bytes less those set aside.
    [[nodiscard]] u64 available_bytes() const noexcept
    {
        return (free_chunks_ - set_aside_chunks_) << layout_.chunk_shift;
    }
    [[nodiscard]] u64 set_aside_bytes() const noexcept
    {
        return set_aside_chunks_ << layout_.chunk_shift;
    }
    // Free bytes known to be zero (freed with cleared = true and not handed out since).
    [[nodiscard]] u64 cleared_bytes() const noexcept
    {
        return cleared_chunks_ << layout_.chunk_shift;
    }
    [[nodiscard]] u64 total_bytes() const noexcept
    {
        return layout_.total_chunks << layout_.chunk_shift;
    }

    // Allocates `size` bytes. On success the blocks are in out[0 .. result.blocks.size()).
    // Errors: invalid_argument (size 0, a bad option, `out` too small), out_of_range (the
    // window holds no managed memory), out_of_memory (not enough free space that satisfies
    // the options; chunks set aside are not available to it). With `from_set_aside`: one
    // chunk of what set_aside() promised, never out_of_memory; invalid_argument when
    // nothing is set aside or the request is more than one unrestricted chunk. Nothing
    // changes on error.
    [[nodiscard]] Result<BuddyAllocation> allocate(u64 size, const BuddyOptions &options,
                                                   std::span<BuddyBlock> out) noexcept
    {
        AuditOnExit audit{*this};
        Request request;
        if (auto prepared = prepare(size, options, request); !prepared)
            return failure(prepared.error());
        if (out.empty()) return failure(Error::invalid_argument);
        if (options.from_set_aside) return allocate_set_aside(request, out);
        if (request.chunks + set_aside_chunks_ > free_chunks_) return failure(Error::out_of_memory);
        if (is_power_of_two(request.chunks) && request.unrestricted) {
            // One block: the common case, served by a direct descent of the summaries.
            unsigned order = static_cast<unsigned>(std::countr_zero(request.chunks));
            if (order < layout_.order_count) {
                Taken taken = take_whole_block(order, request.preferred, request.top_down);
                if (taken.start != not_found) {
                    out[0] = block_of(order, taken.start >> order, taken.kind == clean);
                    return BuddyAllocation{out.first(1), request.chunks << layout_.chunk_shift};
                }
            }
        }
        return allocate_searching(request, options.contiguous, out);
    }

    // Promises `chunks` single chunks for later: from now on other requests (allocate,
    // reserve) leave at least that many chunks free, and each allocate with
    // `from_set_aside` takes one of them. Any free chunk serves such a request, so the
    // promise needs no particular chunk: it is a count, and costs O(1). This is how work
    // that must not fail later (a bind job's commit) holds its worst case without taking
    // pages it will mostly not use. Errors: out_of_memory (fewer chunks available).
    [[nodiscard]] Result<void> set_aside(u64 chunks) noexcept
    {
        if (chunks > free_chunks_ - set_aside_chunks_) return failure(Error::out_of_memory);
        set_aside_chunks_ += chunks;
        return success();
    }
    // Gives back `chunks` of the promise that were not drawn (at most what is set aside).
    void release_set_aside(u64 chunks) noexcept
    {
        GPUMMU_ASSERT(chunks <= set_aside_chunks_);
        set_aside_chunks_ -= std::min(chunks, set_aside_chunks_);
    }

    // Frees blocks returned by allocate/reserve/trim. `cleared`: the caller zeroed them.
    // Errors: misaligned / out_of_range (not a block this allocator could have made),
    // double_free (already free), not_allocated (not a block that is allocated as such).
    [[nodiscard]] Result<void> free(std::span<const BuddyBlock> blocks,
                                    bool cleared = false) noexcept
    {
        const Kind kind = cleared ? clean : dirty;
        // The common case, one block, is a function of its own so that it stays small
        // enough to inline where it is called.
        return blocks.size() == 1 ? free_one(blocks[0], kind) : free_several(blocks, kind);
    }
    [[nodiscard]] Result<void> free(const BuddyBlock &block, bool cleared = false) noexcept
    {
        return free_one(block, cleared ? clean : dirty);
    }

    // Shrinks an allocation in place to `new_size` bytes (rounded up to the chunk): keeps
    // the blocks in list order up to new_size, splits the block that straddles it and frees
    // the rest (as dirty). The kept blocks are rewritten into `blocks`, which must have room
    // for them (a split block becomes up to log2 pieces). Returns the new block count.
    [[nodiscard]] Result<std::size_t> trim(std::span<BuddyBlock> blocks, std::size_t count,
                                           u64 new_size) noexcept
    {
        AuditOnExit audit{*this};
        if (count > blocks.size()) return failure(Error::invalid_argument);
        u64 current = 0;
        for (std::size_t i = 0; i < count; ++i) {
            Node node;
            if (auto located = locate(blocks[i], node); !located) return failure(located.error());
            if (auto is_allocated = check_allocated(node); !is_allocated)
                return failure(is_allocated.error());
            current += blocks[i].size;
        }
        auto rounded = align_up(new_size, chunk_bytes());
        if (!rounded) return failure(rounded.error());
        if (*rounded > current) return failure(Error::invalid_argument);  // trim cannot grow
        // Find the straddling block and check the output has room before changing anything.
        std::size_t keep_whole = 0;
        u64 kept = 0;
        while (keep_whole < count && kept + blocks[keep_whole].size <= *rounded)
            kept += blocks[keep_whole++].size;
        u64 partial_chunks = (*rounded - kept) >> layout_.chunk_shift;
        std::size_t pieces = std::size_t{count_ones(partial_chunks)};
        if (keep_whole + pieces > blocks.size()) return failure(Error::invalid_argument);
        std::size_t first_freed = keep_whole + (partial_chunks != 0 ? 1 : 0);
        BuddyBlock straddling = partial_chunks != 0 ? blocks[keep_whole] : BuddyBlock{};
        for (std::size_t i = first_freed; i < count; ++i) {
            Node node;
            (void)locate(blocks[i], node);
            release(node.order, node.index, dirty);
        }
        std::size_t written = keep_whole;
        if (partial_chunks != 0) {
            Node node;
            (void)locate(straddling, node);
            written += keep_prefix(node, partial_chunks, dirty, straddling.cleared,
                                   blocks.subspan(keep_whole));
        }
        return written;
    }

    // Takes exactly [range.begin, range.end) (chunk-aligned, inside one region, all free):
    // firmware areas, a GSP-owned page directory. Errors: misaligned, out_of_range,
    // overlap (some chunk is allocated), invalid_argument (`out` too small),
    // out_of_memory (the range is free but taking it would break a set_aside promise).
    [[nodiscard]] Result<BuddyAllocation> reserve(VramRange range,
                                                  std::span<BuddyBlock> out) noexcept
    {
        AuditOnExit audit{*this};
        if (range.empty()) return failure(Error::invalid_argument);
        if (!range.begin().is_aligned_to(chunk_bytes()) ||
            !range.end().is_aligned_to(chunk_bytes()))
            return failure(Error::misaligned);
        u64 first = range.begin().value() >> layout_.chunk_shift;
        u64 end = range.end().value() >> layout_.chunk_shift;
        if (region_of(first, end) < 0) return failure(Error::out_of_range);
        std::size_t pieces = 0;
        for (u64 chunk = first; chunk < end; ++pieces) {
            unsigned order = largest_order_at(chunk, end - chunk, layout_.order_count);
            if (!is_all_free(order, chunk >> order)) return failure(Error::overlap);
            chunk += u64{1} << order;
        }
        if (pieces > out.size()) return failure(Error::invalid_argument);
        if (end - first + set_aside_chunks_ > free_chunks_) return failure(Error::out_of_memory);
        std::size_t written = collect(first, end, out);
        return BuddyAllocation{out.first(written), range.size()};
    }

    // Every free byte becomes cleared (`cleared`: a scrubber has zeroed all free memory) or
    // dirty (after a suspend, or when nothing is known any more). Blocks that change kind
    // merge with their buddies, so the free memory ends as its maximal aligned blocks.
    // O(free blocks of the other kind x log N). Allocated blocks are not touched.
    void reset_clear(bool cleared) noexcept
    {
        AuditOnExit audit{*this};
        const Kind target = cleared ? clean : dirty;
        const Kind other = cleared ? dirty : clean;
        // Low orders first: a converted block merges upward into orders not yet visited,
        // and never creates a block of the other kind.
        for (unsigned order = 0; order < layout_.order_count; ++order) {
            while (counts_[order][other] != 0) {
                u64 index = find_extreme(order, other, false) + layout_.node_low[order];
                remove_free(order, index, other, allocated);
                release(order, index, target);
            }
        }
    }

    // Is `block` allocated exactly as handed out (what free() would accept)? success, or the
    // error free() would return for it. O(1) for an allocated block; nothing changes.
    [[nodiscard]] Result<void> check_allocated(const BuddyBlock &block) const noexcept
    {
        Node node;
        GPUMMU_TRY(locate(block, node));
        return check_allocated(node);
    }

    // The allocated block holding `address`. Errors: out_of_range (in no region),
    // not_allocated (the chunk is free). The result's `cleared` is false: the allocator
    // does not remember what a block was when handed out.
    [[nodiscard]] Result<BuddyBlock> block_at(VramAddress address) const noexcept
    {
        auto found = block_state_at(address);
        if (!found) return failure(found.error());
        if (found->state != BuddyBlockState::allocated) return failure(Error::not_allocated);
        return found->block;
    }

    // The block, free or allocated, holding `address`, and what it is: a map of VRAM is a
    // walk of these (next address: block.address + block.size). `cleared` says whether a
    // free block is known to be zero. Errors: out_of_range (in no region). O(log N).
    [[nodiscard]] Result<BuddyBlockAt> block_state_at(VramAddress address) const noexcept
    {
        u64 chunk = address.value() >> layout_.chunk_shift;
        if (region_of(chunk, chunk + 1) < 0) return failure(Error::out_of_range);
        Node node;
        u64 value = none;
        if (!block_holding(chunk, node, value)) return failure(Error::out_of_range);
        const BuddyBlockState state = value == allocated    ? BuddyBlockState::allocated
                                      : value == free_clean ? BuddyBlockState::free_cleared
                                                            : BuddyBlockState::free_dirty;
        return BuddyBlockAt{
            block_of(node.order, node.index, state == BuddyBlockState::free_cleared), state};
    }

    [[nodiscard]] BuddyStats stats() const noexcept
    {
        BuddyStats out;
        out.chunk_bytes = chunk_bytes();
        out.total_bytes = total_bytes();
        out.free_bytes = free_bytes();
        out.cleared_bytes = cleared_bytes();
        out.set_aside_bytes = set_aside_bytes();
        out.order_count = layout_.order_count;
        for (unsigned order = 0; order < layout_.order_count; ++order) {
            u64 blocks = counts_[order][dirty] + counts_[order][clean];
            out.free_bytes_per_order[order] = blocks << (order + layout_.chunk_shift);
            if (blocks != 0) out.largest_free_block = u64{1} << (order + layout_.chunk_shift);
        }
        return out;
    }

    // Full audit: O(chunks). For tests and debug builds.
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        u64 free_seen = 0, cleared_seen = 0, allocated_seen = 0;
        std::array<std::array<u64, 2>, max_orders> counts_seen{};
        for (std::size_t r = 0; r < layout_.region_count; ++r) {
            u64 chunk = layout_.region_first[r];
            u64 end = layout_.region_end[r];
            while (chunk < end) {
                unsigned order = largest_order_at(chunk, end - chunk, layout_.order_count);
                if (!audit(order, chunk >> order, free_seen, cleared_seen, allocated_seen,
                           counts_seen))
                    return failure(Error::malformed_record);
                chunk += u64{1} << order;
            }
        }
        if (free_seen != free_chunks_ || cleared_seen != cleared_chunks_ ||
            free_seen + allocated_seen != layout_.total_chunks || set_aside_chunks_ > free_chunks_)
            return failure(Error::malformed_record);
        for (unsigned order = 0; order < layout_.order_count; ++order) {
            for (Kind kind : {dirty, clean}) {
                if (counts_seen[order][kind] != counts_[order][kind])
                    return failure(Error::malformed_record);
                bool nonempty = (nonempty_[kind] >> order) & 1u;
                if (nonempty != (counts_[order][kind] != 0))
                    return failure(Error::malformed_record);
                if (!summaries_agree(order, kind)) return failure(Error::malformed_record);
            }
        }
        return success();
    }

    // A hash of everything observable: every node state and the counters, but not the
    // summaries (they may hold stale bits). Equal fingerprints: the same blocks are free
    // and allocated with the same kinds. Tests use it to prove an error changed nothing.
    [[nodiscard]] u64 fingerprint() const noexcept
    {
        u64 hash = 0xcbf29ce484222325ull;  // FNV-1a over 64-bit words
        auto mix = [&hash](u64 value) {
            for (unsigned byte = 0; byte < 8; ++byte) {
                hash ^= (value >> (8 * byte)) & 0xFF;
                hash *= 0x100000001b3ull;
            }
        };
        for (unsigned order = 0; order < layout_.order_count; ++order)
            for (std::size_t word = 0; word < layout_.level_words[order][0]; ++word)
                mix(words_[layout_.node_words[order] + word]);
        mix(free_chunks_);
        mix(cleared_chunks_);
        mix(set_aside_chunks_);
        return hash;
    }

    // Bytes of metadata this allocator uses (storage words plus the object itself).
    [[nodiscard]] u64 metadata_bytes() const noexcept
    {
        return layout_.total_words * sizeof(u64) + sizeof(*this);
    }

private:
    // With GPUMMU_BUDDY_AUDIT_EVERY_OPERATION defined (debug builds of tests and drivers),
    // every mutating call ends with the full audit and traps on a broken invariant.
    void audit_if_enabled() const noexcept
    {
#if defined(GPUMMU_BUDDY_AUDIT_EVERY_OPERATION)
        if (!check_invariants()) detail::assertion_failure("BuddyAllocator invariant broken");
#endif
    }
    struct AuditOnExit {
        const BuddyAllocator &allocator;
        ~AuditOnExit() { allocator.audit_if_enabled(); }
    };

    // ---- layout ---------------------------------------------------------------------------
    enum : u64 {
        none = detail::buddy_none,
        allocated = detail::buddy_allocated,
        free_dirty = detail::buddy_free_dirty,
        free_clean = detail::buddy_free_clean
    };
    enum Kind : u8 { dirty = 0, clean = 1 };
    static constexpr unsigned max_levels = 6;
    // Orders >= 1: 2-bit states, 32 per word. Order 0: sibling pairs in 3-bit codes, 21
    // pairs (42 nodes) per word (see "order-0 pairs" below).
    static constexpr unsigned nodes_per_word = 32;
    static constexpr unsigned pairs_per_word = 21;
    static constexpr unsigned order0_nodes_per_word = 2 * pairs_per_word;
    static constexpr u64 nodes_in_word(unsigned order) noexcept
    {
        return order == 0 ? order0_nodes_per_word : nodes_per_word;
    }

    struct Layout {
        unsigned chunk_shift = 12;
        unsigned order_count = 0;
        u64 total_chunks = 0;
        std::size_t total_words = 0;
        std::size_t region_count = 0;
        std::array<u64, max_regions> region_first{};  // in chunks (absolute)
        std::array<u64, max_regions> region_end{};
        std::array<u64, max_orders> node_low{};  // absolute index of the first node
        std::array<u64, max_orders> node_count{};
        std::array<std::size_t, max_orders> node_words{};  // offset of the node-state words
        // Summary levels per order and kind: level 0 is the node words themselves.
        std::array<std::array<std::array<std::size_t, max_levels>, 2>, max_orders> level_offset{};
        std::array<std::array<std::size_t, max_levels>, max_orders> level_words{};
        std::array<unsigned, max_orders> level_count{};
    };

    struct Node {
        unsigned order = 0;
        u64 index = 0;  // absolute: chunk >> order
    };

    struct Request {
        u64 chunks = 0;
        unsigned min_order = 0;
        unsigned align_order = 0;  // block addresses aligned to 2^align_order chunks (0: own size)
        u64 window_first = 0;      // chunks, absolute
        u64 window_end = 0;
        bool top_down = false;
        bool whole_window = false;  // the window covers every region
        bool unrestricted = false;  // whole window and no alignment above the request's size
        Kind preferred = dirty;
    };

    static Result<void> plan(std::span<const VramRange> regions, u64 chunk_bytes,
                             Layout &layout) noexcept
    {
        if (!is_power_of_two(chunk_bytes) || chunk_bytes < 4096)
            return failure(Error::invalid_argument);
        if (regions.empty() || regions.size() > max_regions)
            return failure(Error::invalid_argument);
        layout = Layout{};
        layout.chunk_shift = static_cast<unsigned>(std::countr_zero(chunk_bytes));
        u64 largest = 0;
        for (std::size_t r = 0; r < regions.size(); ++r) {
            const VramRange &range = regions[r];
            if (range.empty()) return failure(Error::invalid_argument);
            if (!range.begin().is_aligned_to(chunk_bytes) ||
                !range.end().is_aligned_to(chunk_bytes))
                return failure(Error::misaligned);
            u64 first = range.begin().value() >> layout.chunk_shift;
            u64 end = range.end().value() >> layout.chunk_shift;
            // Regions must be sorted and disjoint; a region that starts where the previous
            // one ends continues it (memory that touches is one region).
            std::size_t count = layout.region_count;
            if (count > 0 && first < layout.region_end[count - 1]) return failure(Error::overlap);
            if (count > 0 && first == layout.region_end[count - 1]) {
                layout.region_end[count - 1] = end;
            } else {
                layout.region_first[count] = first;
                layout.region_end[count] = end;
                ++layout.region_count;
            }
            count = layout.region_count;
            layout.total_chunks += end - first;
            largest =
                std::max(largest, layout.region_end[count - 1] - layout.region_first[count - 1]);
        }
        u64 hull_first = layout.region_first[0];
        u64 hull_last = layout.region_end[layout.region_count - 1] - 1;
        if (hull_last - hull_first >= max_chunks) return failure(Error::space_too_large);
        layout.order_count = static_cast<unsigned>(std::bit_width(largest));
        std::size_t offset = 0;
        for (unsigned order = 0; order < layout.order_count; ++order) {
            // Order 0 starts at an even chunk so that every stored pair is a pair of buddies.
            layout.node_low[order] = order == 0 ? hull_first & ~u64{1} : hull_first >> order;
            layout.node_count[order] = (hull_last >> order) - layout.node_low[order] + 1;
            std::size_t words = static_cast<std::size_t>(
                (layout.node_count[order] + nodes_in_word(order) - 1) / nodes_in_word(order));
            layout.node_words[order] = offset;
            layout.level_words[order][0] = words;
            offset += words;
            unsigned levels = 1;
            while (words > 1) {
                if (levels == max_levels) return failure(Error::out_of_range);
                words = (words + 63) / 64;
                layout.level_words[order][levels++] = words;
            }
            layout.level_count[order] = levels;
            for (Kind kind : {dirty, clean}) {
                layout.level_offset[order][kind][0] = layout.node_words[order];
                for (unsigned level = 1; level < levels; ++level) {
                    layout.level_offset[order][kind][level] = offset;
                    offset += layout.level_words[order][level];
                }
            }
        }
        layout.total_words = offset;
        return success();
    }

    // Largest order whose aligned block starts at `chunk` and fits in `available` chunks.
    static unsigned largest_order_at(u64 chunk, u64 available, unsigned order_count) noexcept
    {
        unsigned by_alignment = chunk == 0 ? 63u : static_cast<unsigned>(std::countr_zero(chunk));
        unsigned by_size = static_cast<unsigned>(std::bit_width(available)) - 1u;
        return std::min({by_alignment, by_size, order_count - 1});
    }

    // ---- node states ----------------------------------------------------------------------
    [[nodiscard]] u64 local(unsigned order, u64 index) const noexcept
    {
        return index - layout_.node_low[order];
    }
    [[nodiscard]] bool in_hull(unsigned order, u64 index) const noexcept
    {
        return index >= layout_.node_low[order] && local(order, index) < layout_.node_count[order];
    }
    // ---- order-0 pairs ----------------------------------------------------------------
    // The two order-0 children of one order-1 node are stored together in a 3-bit code.
    // Of the 16 (left, right) combinations only 8 can hold between operations: both none
    // (covered by a bigger block, or outside every region), or both blocks (allocated,
    // free dirty, free cleared) except two free buddies of the same kind (they merge).
    //
    //   code  b2 b1 b0   left  right        b0: left is free     b1: right is free
    //    0     0  0  0   none  none         b2: the kind (1 = cleared) of the left side
    //    4     1  0  0    A     A               when it is free, else of the right side
    //    1     0  0  1    FD    A
    //    5     1  0  1    FC    A           left free of kind K:  b0 and (b2 == K)
    //    2     0  1  0    A     FD          right free of kind K: b1 and (b0 xor b2 == K)
    //    6     1  1  0    A     FC
    //    3     0  1  1    FD    FC          so the summaries' "free of kind K" bits come
    //    7     1  1  1    FC    FD          out of a word with a few shifts and masks
    //
    // One side is written at a time. A side written while the other is still none (the
    // pair is being split, or the other chunk lies outside every region) stores the other
    // as allocated: a chunk outside every region reads as allocated, which no caller asks
    // about (they check the region first). When an order-1 node becomes a block its pair
    // is written back to code 0, so a pair that was merged away reads none again. A 4 KiB
    // free reads its pair once; one lookup (release_table) says whether the side may be
    // freed and what the pair's code becomes, 0 when it merges.
    // The same two functions as packed tables (a shift and a mask on the hot paths):
    // 2 bits per (code, side), 3 bits per (left, right).
    static constexpr u64 pair_state_table = [] {
        u64 table = 0;
        for (unsigned code = 0; code < 8; ++code)
            for (unsigned side = 0; side < 2; ++side)
                table |= u64{detail::buddy_pair_state(code, side)} << (4 * code + 2 * side);
        return table;
    }();
    static constexpr u64 pair_code_table = [] {
        u64 table = 0;
        for (u64 left = 0; left < 4; ++left)
            for (u64 right = 0; right < 4; ++right)
                table |= u64{detail::buddy_pair_code(left, right)} << (3 * (4 * left + right));
        return table;
    }();
    static constexpr unsigned pair_state(unsigned code, unsigned side) noexcept
    {
        return static_cast<unsigned>((pair_state_table >> (4 * code + 2 * side)) & 3u);
    }
    static constexpr unsigned pair_code(u64 left, u64 right) noexcept
    {
        GPUMMU_ASSERT(left < free_dirty || left != right);  // same-kind free buddies merge
        return static_cast<unsigned>((pair_code_table >> (3 * (4 * left + right))) & 7u);
    }
    // Freeing one side of a pair as one lookup (detail::buddy_release_entry, packed per
    // kind, 4 bits by (code, side)): a 4 KiB free reads its pair once and decides with it.
    static constexpr unsigned side_allocated = detail::buddy_side_allocated;
    static constexpr std::array<u64, 2> release_table = [] {
        std::array<u64, 2> table{};
        for (Kind kind : {dirty, clean})
            for (unsigned code = 0; code < 8; ++code)
                for (unsigned side = 0; side < 2; ++side)
                    table[kind] |= u64{detail::buddy_release_entry(code, side, kind == clean)}
                                   << (8 * code + 4 * side);
        return table;
    }();
    static constexpr unsigned release_entry(unsigned code, unsigned side, Kind kind) noexcept
    {
        return static_cast<unsigned>((release_table[kind] >> (8 * code + 4 * side)) & 15u);
    }
    static constexpr u64 lane_bits = 0x1249249249249249ull;  // bit 0 of each 3-bit lane
    static_assert(std::popcount(lane_bits) == pairs_per_word && lane_bits >> 63 == 0);

    // Where a node's state lives: its level-0 word, the word's index in its order, the
    // shift of the node's field (order 0: of its pair's 3-bit code) and, for order 0, the
    // side of the pair (0 left, 1 right).
    struct Slot {
        u64 *word;
        std::size_t word_index;
        unsigned shift;
        unsigned side;
    };
    [[nodiscard]] GPUMMU_ALWAYS_INLINE Slot slot_of(unsigned order, u64 index) const noexcept
    {
        u64 position = local(order, index);
        if (order == 0) {
            // Word position / 42, lane (position % 42) / 2; the side is the parity (42 is even).
            auto word_index = static_cast<std::size_t>(position / order0_nodes_per_word);
            u64 in_word = position % order0_nodes_per_word;
            return Slot{words_ + layout_.node_words[0] + word_index, word_index,
                        static_cast<unsigned>(3 * (in_word >> 1)),
                        static_cast<unsigned>(position & 1u)};
        }
        auto word_index = static_cast<std::size_t>(position / nodes_per_word);
        return Slot{words_ + layout_.node_words[order] + word_index, word_index,
                    static_cast<unsigned>(2 * (position % nodes_per_word)), 0};
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE u64 state(unsigned order, u64 index) const noexcept
    {
        Slot slot = slot_of(order, index);
        if (order == 0) return pair_state(code_at(slot), slot.side);
        return field_at(slot);
    }
    // The 2-bit state field of a node of order >= 1, read and written where it lives.
    [[nodiscard]] GPUMMU_ALWAYS_INLINE static u64 field_at(Slot slot) noexcept
    {
        return (*slot.word >> slot.shift) & 3u;
    }
    GPUMMU_ALWAYS_INLINE static void write_field_at(Slot slot, u64 value) noexcept
    {
        *slot.word = (*slot.word & ~(u64{3} << slot.shift)) | (value << slot.shift);
    }
    // The 3-bit code of an order-0 pair, likewise.
    [[nodiscard]] GPUMMU_ALWAYS_INLINE static unsigned code_at(Slot slot) noexcept
    {
        return static_cast<unsigned>((*slot.word >> slot.shift) & 7u);
    }
    GPUMMU_ALWAYS_INLINE static void write_code_at(Slot slot, unsigned code) noexcept
    {
        *slot.word = (*slot.word & ~(u64{7} << slot.shift)) | (u64{code} << slot.shift);
    }

    // The sides of an order-0 word's pairs that are free of `kind`, each at bit 3p of pair
    // p: left free of kind K is b0 and b2 == K; right is b1 and (b0 xor b2) == K.
    struct FreeSides {
        u64 left;
        u64 right;
    };
    GPUMMU_ALWAYS_INLINE static FreeSides free_sides(u64 word, Kind kind) noexcept
    {
        u64 kind_bit = word >> 2;
        u64 left = kind == clean ? word & kind_bit : word & ~kind_bit;
        u64 right =
            kind == clean ? (word >> 1) & (word ^ kind_bit) : (word >> 1) & ~(word ^ kind_bit);
        return FreeSides{left & lane_bits, right & lane_bits};
    }
    // Bits of a level-0 word whose node is free of `kind`: orders >= 1 at bit 2i for node
    // i of the word; order 0 at bit 3p (left) and 3p + 1 (right) for pair p.
    static constexpr u64 even_bits = 0x5555555555555555ull;
    GPUMMU_ALWAYS_INLINE static u64 kind_bits(unsigned order, u64 word, Kind kind) noexcept
    {
        if (order == 0) {
            FreeSides sides = free_sides(word, kind);
            return sides.left | sides.right << 1;
        }
        return kind == clean ? (word & (word >> 1)) & even_bits : ((word >> 1) & ~word) & even_bits;
    }
    // As many bits as kind_bits() has (a pair holds at most one free side of each kind, the
    // two free buddies of one kind merge), for the summaries' empty / one-node checks; order
    // 0 with one bit per pair, fewer operations than placing each side's bit.
    GPUMMU_ALWAYS_INLINE static u64 kind_count_bits(unsigned order, u64 word, Kind kind) noexcept
    {
        if (order == 0) {
            FreeSides sides = free_sides(word, kind);
            return sides.left | sides.right;
        }
        return kind_bits(order, word, kind);
    }

    // Writes a node state; returns where it lives (its word as it is afterwards).
    GPUMMU_ALWAYS_INLINE Slot write_state(unsigned order, u64 index, u64 value) noexcept
    {
        Slot slot = slot_of(order, index);
        if (order == 0) {
            unsigned code = code_at(slot);
            u64 other = pair_state(code, slot.side ^ 1u);
            unsigned written = slot.side == 0 ? pair_code(value, other) : pair_code(other, value);
            write_code_at(slot, written);
            return slot;
        }
        write_field_at(slot, value);
        GPUMMU_ASSERT(order != 1 || value == none || children_code(index) == 0);
        return slot;
    }
    [[nodiscard]] unsigned children_code(u64 parent) const noexcept
    {
        u64 position = local(0, 2 * parent);
        u64 word = words_[layout_.node_words[0] + position / order0_nodes_per_word];
        return static_cast<unsigned>((word >> (3 * ((position % order0_nodes_per_word) >> 1))) &
                                     7u);
    }
    // The two children of order-1 node `parent` are none again (the node became a block, or
    // merged into one above it): their pair goes back to code 0. It holds no free side by
    // now, so no summary changes. Only clear_subtree() needs it: every other path that makes
    // an order-1 node a block finds its pair at code 0 already (a split of a bigger block,
    // a merge, which writes code 0 itself, or a node that was a block before).
    void clear_pair(u64 parent) noexcept
    {
        u64 position = local(0, 2 * parent);
        words_[layout_.node_words[0] + position / order0_nodes_per_word] &=
            ~(u64{7} << (3 * ((position % order0_nodes_per_word) >> 1)));
    }

    // Only a change into or out of a free state can change a summary, and only for that
    // kind: allocated <-> none writes leave the summaries alone.
    GPUMMU_ALWAYS_INLINE void set_state(unsigned order, u64 index, u64 value) noexcept
    {
        (void)write_state(order, index, value);
    }

    GPUMMU_ALWAYS_INLINE void set_free(unsigned order, u64 index, Kind kind) noexcept
    {
        Slot slot = write_state(order, index, kind == clean ? free_clean : free_dirty);
        gained_free(order, kind, slot, index);
    }
    GPUMMU_ALWAYS_INLINE void clear_free(unsigned order, u64 index, Kind kind,
                                         u64 new_state) noexcept
    {
        Slot slot = write_state(order, index, new_state);
        lost_free(order, kind, slot);
    }
    // The summaries after node `index` of `kind` in the slot's word became free / stopped
    // being free. The only free node of an order and kind is kept in lone_ instead of the
    // summary levels above 0 (they stay zero): an order that toggles between none and one
    // free block (every order while 4 KiB blocks are allocated in a row) never walks them.
    // The second free node writes the lone one into the summaries.
    GPUMMU_ALWAYS_INLINE void gained_free(unsigned order, Kind kind, Slot slot, u64 index) noexcept
    {
        u64 &lone = lone_[order][kind];
        if (counts_[order][kind] == 0) {
            lone = local(order, index);
            return;
        }
        if (lone != not_found) [[unlikely]]
            record_lone(order, kind);
        u64 bits = kind_count_bits(order, *slot.word, kind);
        // The word had no node of this kind before iff this is its only one now.
        if ((bits & (bits - 1)) == 0) mark_nonempty(order, kind, slot.word_index);
    }
    // The lone node gets company: write it into the summaries.
    GPUMMU_NOINLINE void record_lone(unsigned order, Kind kind) noexcept
    {
        u64 &lone = lone_[order][kind];
        mark_nonempty(order, kind, static_cast<std::size_t>(lone / nodes_in_word(order)));
        lone = not_found;
    }
    GPUMMU_ALWAYS_INLINE void lost_free(unsigned order, Kind kind, Slot slot) noexcept
    {
        u64 &lone = lone_[order][kind];
        if (lone != not_found) {
            lone = not_found;  // it was the only one, so it is this node
            return;
        }
        if (kind_count_bits(order, *slot.word, kind) == 0) mark_empty(order, kind, slot.word_index);
    }
    // Counting is in two parts: the free blocks per order and kind (counts_, nonempty_),
    // and the free and cleared chunk totals. A merge or a split moves free chunks between
    // orders without changing the totals, so those paths count blocks per order and change
    // the totals once, by what was freed or taken.
    GPUMMU_ALWAYS_INLINE void count_block(unsigned order, Kind kind) noexcept
    {
        if (counts_[order][kind]++ == 0) nonempty_[kind] |= u64{1} << order;
    }
    GPUMMU_ALWAYS_INLINE void uncount_block(unsigned order, Kind kind) noexcept
    {
        if (--counts_[order][kind] == 0) nonempty_[kind] &= ~(u64{1} << order);
    }
    GPUMMU_ALWAYS_INLINE void add_free_chunks(Kind kind, u64 chunks) noexcept
    {
        free_chunks_ += chunks;
        if (kind == clean) cleared_chunks_ += chunks;
    }
    GPUMMU_ALWAYS_INLINE void subtract_free_chunks(Kind kind, u64 chunks) noexcept
    {
        free_chunks_ -= chunks;
        if (kind == clean) cleared_chunks_ -= chunks;
    }
    GPUMMU_ALWAYS_INLINE void count_free(unsigned order, Kind kind) noexcept
    {
        count_block(order, kind);
        add_free_chunks(kind, u64{1} << order);
    }
    GPUMMU_ALWAYS_INLINE void count_taken(unsigned order, Kind kind) noexcept
    {
        uncount_block(order, kind);
        subtract_free_chunks(kind, u64{1} << order);
    }

    // Word `index` of level 0 gained its first node of `kind`: set the summary bits up to
    // the first level whose word was already non-empty.
    GPUMMU_ALWAYS_INLINE void mark_nonempty(unsigned order, Kind kind, std::size_t index) noexcept
    {
        for (unsigned level = 1; level < layout_.level_count[order]; ++level) {
            u64 &word = words_[layout_.level_offset[order][kind][level] + index / 64];
            bool was_empty = word == 0;
            word |= u64{1} << (index % 64);
            if (!was_empty) return;
            index /= 64;
        }
    }
    // Word `index` of level 0 lost its last node of `kind`.
    GPUMMU_ALWAYS_INLINE void mark_empty(unsigned order, Kind kind, std::size_t index) noexcept
    {
        for (unsigned level = 1; level < layout_.level_count[order]; ++level) {
            u64 &word = words_[layout_.level_offset[order][kind][level] + index / 64];
            word &= ~(u64{1} << (index % 64));
            if (word != 0) return;
            index /= 64;
        }
    }

    GPUMMU_ALWAYS_INLINE void insert_free(unsigned order, u64 index, Kind kind) noexcept
    {
        set_free(order, index, kind);
        count_free(order, kind);
    }
    GPUMMU_ALWAYS_INLINE void remove_free(unsigned order, u64 index, Kind kind,
                                          u64 new_state) noexcept
    {
        clear_free(order, index, kind, new_state);
        count_taken(order, kind);
    }

    // ---- search ---------------------------------------------------------------------------
    static constexpr u64 not_found = ~u64{0};

    [[nodiscard]] GPUMMU_ALWAYS_INLINE u64 summary_word(unsigned order, Kind kind, unsigned level,
                                                        std::size_t index) const noexcept
    {
        u64 word = words_[layout_.level_offset[order][kind][level] + index];
        return level == 0 ? kind_bits(order, word, kind) : word;
    }
    // Bit of an entry in its word at each level (level 0: where kind_bits() puts a node),
    // and back from a set bit to the entry.
    static unsigned bit_of(unsigned order, unsigned level, u64 entry) noexcept
    {
        if (level != 0) return static_cast<unsigned>(entry);
        if (order == 0) return static_cast<unsigned>(3 * (entry / 2) + (entry & 1u));
        return static_cast<unsigned>(entry * 2);
    }
    static u64 entry_of(unsigned order, unsigned level, unsigned bit) noexcept
    {
        if (level != 0) return bit;
        if (order == 0) return u64{bit} / 3 * 2 + bit % 3;
        return bit / 2;
    }
    static u64 entries_per_word(unsigned order, unsigned level) noexcept
    {
        return level == 0 ? nodes_in_word(order) : 64;
    }

    // First set entry at `level` in [from, to] (local indices), or not_found. The level-0
    // step is inlined where a search starts; the levels above are one out-of-line call
    // (so inlining choices, and timings, do not drift with unrelated changes).
    [[nodiscard]] GPUMMU_NOINLINE u64 find_next_above(unsigned order, Kind kind, unsigned level,
                                                      u64 from, u64 to) const noexcept
    {
        return find_next(order, kind, level, from, to);
    }
    [[nodiscard]] GPUMMU_NOINLINE u64 find_previous_above(unsigned order, Kind kind, unsigned level,
                                                          u64 from, u64 to) const noexcept
    {
        return find_previous(order, kind, level, from, to);
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE u64 find_next(unsigned order, Kind kind, unsigned level,
                                                     u64 from, u64 to) const noexcept
    {
        if (from > to) return not_found;
        u64 per_word = entries_per_word(order, level);
        std::size_t word_index = static_cast<std::size_t>(from / per_word);
        u64 word = summary_word(order, kind, level, word_index) &
                   (~u64{0} << bit_of(order, level, from % per_word));
        if (word == 0) {
            if (level + 1 >= layout_.level_count[order]) return not_found;
            u64 next = find_next_above(order, kind, level + 1, word_index + 1u, to / per_word);
            if (next == not_found) return not_found;
            word_index = static_cast<std::size_t>(next);
            word = summary_word(order, kind, level, word_index);
        }
        u64 found = word_index * per_word +
                    entry_of(order, level, static_cast<unsigned>(std::countr_zero(word)));
        return found <= to ? found : not_found;
    }

    // Last set entry at `level` in [from, to], or not_found.
    [[nodiscard]] GPUMMU_ALWAYS_INLINE u64 find_previous(unsigned order, Kind kind, unsigned level,
                                                         u64 from, u64 to) const noexcept
    {
        if (from > to) return not_found;
        u64 per_word = entries_per_word(order, level);
        std::size_t word_index = static_cast<std::size_t>(to / per_word);
        // Orders >= 1 keep the odd partner bit too (kind_bits() never sets it).
        unsigned top_bit =
            bit_of(order, level, to % per_word) + (level == 0 && order != 0 ? 1u : 0u);
        u64 keep = top_bit >= 63 ? ~u64{0} : (u64{2} << top_bit) - 1;
        u64 word = summary_word(order, kind, level, word_index) & keep;
        if (word == 0) {
            if (level + 1 >= layout_.level_count[order] || word_index == 0) return not_found;
            u64 previous =
                find_previous_above(order, kind, level + 1, from / per_word, word_index - 1u);
            if (previous == not_found) return not_found;
            word_index = static_cast<std::size_t>(previous);
            word = summary_word(order, kind, level, word_index);
        }
        auto highest = static_cast<unsigned>(63 - std::countl_zero(word));
        u64 found = word_index * per_word + entry_of(order, level, highest);
        return found >= from ? found : not_found;
    }

    // First (or last) free node of `kind` at `order` in [from, to] (local indices), or
    // not_found. A lone node is the only candidate.
    [[nodiscard]] u64 first_free(unsigned order, Kind kind, u64 from, u64 to) const noexcept
    {
        if (u64 lone = lone_[order][kind]; lone != not_found)
            return lone >= from && lone <= to ? lone : not_found;
        return find_next(order, kind, 0, from, to);
    }
    [[nodiscard]] u64 last_free(unsigned order, Kind kind, u64 from, u64 to) const noexcept
    {
        if (u64 lone = lone_[order][kind]; lone != not_found)
            return lone >= from && lone <= to ? lone : not_found;
        return find_previous(order, kind, 0, from, to);
    }

    // First (or last) free node of `kind` at `order`, by descending the summaries from
    // their single top word: one load and one bit scan per level.
    [[nodiscard]] u64 find_extreme(unsigned order, Kind kind, bool last) const noexcept
    {
        if (lone_[order][kind] != not_found) return lone_[order][kind];
        std::size_t index = 0;
        for (unsigned level = layout_.level_count[order]; level-- > 0;) {
            u64 word = summary_word(order, kind, level, index);
            if (word == 0) return not_found;
            unsigned bit = last ? 63u - static_cast<unsigned>(std::countl_zero(word))
                                : static_cast<unsigned>(std::countr_zero(word));
            if (level == 0) return index * nodes_in_word(order) + entry_of(order, 0, bit);
            index = index * 64 + bit;
        }
        return not_found;
    }

    // A whole free block of 2^target chunks anywhere: best fit bottom-up (smallest order,
    // lowest block), or the highest block of any order top-down. Allocates it.
    struct Taken {
        u64 start = not_found;
        Kind kind = dirty;
    };
    Taken take_whole_block(unsigned target, Kind preferred, bool top_down) noexcept
    {
        for (Kind kind : {preferred, preferred == clean ? dirty : clean}) {
            u64 candidates = nonempty_[kind] & (~u64{0} << target);
            if (candidates == 0) continue;
            Node source{};
            u64 best = not_found;
            if (!top_down) {
                unsigned order = static_cast<unsigned>(std::countr_zero(candidates));
                source = Node{order, find_extreme(order, kind, false) + layout_.node_low[order]};
                best = source.index << order;
            } else {
                for (; candidates != 0; candidates &= candidates - 1) {
                    unsigned order = static_cast<unsigned>(std::countr_zero(candidates));
                    u64 index = find_extreme(order, kind, true) + layout_.node_low[order];
                    u64 start = ((index + 1) << order) - (u64{1} << target);
                    if (best == not_found || start > best) {
                        best = start;
                        source = Node{order, index};
                    }
                }
            }
            split_to(source, target, best, kind);
            return Taken{best, kind};
        }
        return Taken{};
    }

    // A free block of `kind` holding an aligned 2^target-chunk piece inside the request's
    // window. Bottom-up takes the smallest order that has one (best fit); top-down takes
    // the highest piece over all orders. Returns the piece's first chunk (absolute) and the
    // free block in `source`, or not_found.
    [[nodiscard]] u64 find_piece(const Request &request, unsigned target, Kind kind,
                                 Node &source) const noexcept
    {
        u64 candidates = nonempty_[kind] & (~u64{0} << target);
        u64 best = not_found;
        while (candidates != 0) {
            unsigned order = static_cast<unsigned>(std::countr_zero(candidates));
            candidates &= candidates - 1;
            Node found_source;
            u64 start = find_piece_in_order(request, order, target, kind, found_source);
            if (start == not_found) continue;
            if (!request.top_down) {
                source = found_source;
                return start;
            }
            if (best == not_found || start > best) {
                best = start;
                source = found_source;
            }
        }
        return best;
    }

    [[nodiscard]] u64 find_piece_in_order(const Request &request, unsigned order, unsigned target,
                                          Kind kind, Node &source) const noexcept
    {
        u64 piece = u64{1} << target;
        u64 alignment = u64{1} << std::max(target, request.align_order);
        u64 first_node = request.window_first >> order;
        u64 last_node = (request.window_end - 1) >> order;
        if (last_node < layout_.node_low[order]) return not_found;
        first_node = std::max(first_node, layout_.node_low[order]);
        u64 from = local(order, first_node);
        u64 to = std::min(local(order, last_node), layout_.node_count[order] - 1);
        // Only blocks cut by the window's edges or by an alignment above the block size can
        // miss; give up on this order after a bounded number of misses.
        const u64 lone = lone_[order][kind];
        for (unsigned misses = 0; misses < 64 && from <= to; ++misses) {
            u64 found = lone != not_found  ? (lone >= from && lone <= to ? lone : not_found)
                        : request.top_down ? find_previous(order, kind, 0, from, to)
                                           : find_next(order, kind, 0, from, to);
            if (found == not_found) break;
            u64 index = found + layout_.node_low[order];
            u64 begin = std::max(index << order, request.window_first);
            u64 end = std::min((index + 1) << order, request.window_end);
            u64 start = request.top_down ? (end >= piece ? align_down(end - piece, alignment) : 0)
                                         : (begin + alignment - 1) / alignment * alignment;
            if (start >= begin && start + piece <= end) {
                source = Node{order, index};
                return start;
            }
            if (request.top_down) {
                if (found == 0) break;
                to = found - 1;
            } else {
                from = found + 1;
            }
        }
        return not_found;
    }

    // Splits free block `source` down to the 2^target piece at `start` and allocates it.
    // The other halves stay free with the source's kind. Returns the source's kind.
    Kind split_to(Node source, unsigned target, u64 start) noexcept
    {
        Kind kind = state(source.order, source.index) == free_clean ? clean : dirty;
        split_to(source, target, start, kind);
        return kind;
    }
    // The same, with the source's kind known (the searches found it by kind).
    void split_to(Node source, unsigned target, u64 start, Kind kind) noexcept
    {
        if (source.order == target) {
            remove_free(target, source.index, kind, allocated);
            return;
        }
        // The chunks taken are the target's; the other halves stay free (counted per order).
        clear_free(source.order, source.index, kind, none);
        uncount_block(source.order, kind);
        subtract_free_chunks(kind, u64{1} << target);
        for (unsigned order = source.order; order > target + 1; --order) {
            set_free(order - 1, (start >> (order - 1)) ^ 1u, kind);
            count_block(order - 1, kind);
        }
        u64 child = start >> target;
        if (target != 0) {
            set_free(target, child ^ 1u, kind);
            count_block(target, kind);
            set_state(target, child, allocated);
            return;
        }
        // The last split makes an order-0 pair out of a covered one: written at once, the
        // allocated side and its free buddy.
        Slot slot = slot_of(0, child);
        u64 sibling = kind == clean ? free_clean : free_dirty;
        unsigned code =
            slot.side == 0 ? pair_code(allocated, sibling) : pair_code(sibling, allocated);
        write_code_at(slot, code);
        gained_free(0, kind, slot, child ^ 1u);
        count_block(0, kind);
    }

    // free() of one block: one look at its state, then the release.
    [[nodiscard]] Result<void> free_one(const BuddyBlock &block, Kind kind) noexcept
    {
        AuditOnExit audit{*this};
        Node node;
        std::size_t region;
        if (auto located = locate(block, node, region); !located) return located;
        if (node.order == 0) {
            // A 4 KiB block: its pair is read once, to check and to release it.
            Slot slot = slot_of(0, node.index);
            unsigned code = code_at(slot);
            if (unsigned entry = release_entry(code, slot.side, kind); entry & side_allocated) {
                release_chunk(slot, entry & 7u, node.index, kind, region);
                return success();
            }
        } else if (Slot slot = slot_of(node.order, node.index); field_at(slot) == allocated) {
            // A larger block: its state is read once, to check it and to write it none (it
            // reads none until it is merged or inserted free, as in release()).
            write_field_at(slot, none);
            merge_upward(node.order, node.index, kind, u64{1} << node.order,
                         merge_limit(node.index << node.order, region));
            return success();
        }
        // Not allocated as such: check_allocated says why.
        auto why = check_allocated(node);
        GPUMMU_ASSERT(!why);
        return why;
    }
    // free() of several blocks: all checked before any is released.
    [[nodiscard]] GPUMMU_NOINLINE Result<void> free_several(std::span<const BuddyBlock> blocks,
                                                            Kind kind) noexcept
    {
        AuditOnExit audit{*this};
        for (const BuddyBlock &block : blocks) {
            Node node;
            if (auto located = locate(block, node); !located) return located;
            if (auto is_allocated = check_allocated(node); !is_allocated) return is_allocated;
        }
        // Every block is allocated; a block listed twice is found as we go, and undone.
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            Node node;
            (void)locate(blocks[i], node);
            if (state(node.order, node.index) != allocated) {
                for (std::size_t j = 0; j < i; ++j) (void)take_exact(blocks[j]);
                return failure(Error::double_free);
            }
            release(node.order, node.index, kind);
        }
        return success();
    }

    // Frees an allocated node and merges it upward with same-kind buddies in its region.
    void release(unsigned order, u64 index, Kind kind) noexcept
    {
        if (order == 0) {
            Slot slot = slot_of(0, index);
            unsigned code = code_at(slot);
            release_chunk(slot, release_entry(code, slot.side, kind) & 7u, index, kind,
                          region_holding(index));
            return;
        }
        // The node reads allocated until it is merged or inserted free.
        set_state(order, index, none);
        merge_upward(order, index, kind, u64{1} << order, merge_limit(index << order));
    }
    // Frees allocated order-0 node `index` (its pair in `slot`) in region `region`:
    // `written` is the pair's code afterwards from release_entry(). Code 0: the buddy
    // merges; else the node becomes free beside it.
    GPUMMU_ALWAYS_INLINE void release_chunk(Slot slot, unsigned written, u64 index, Kind kind,
                                            std::size_t region) noexcept
    {
        // A buddy outside the chunk's region reads allocated, so the merge into order 1
        // needs no check of the region; only a merge computes how far it may go.
        const bool merge = written == 0;
        write_code_at(slot, written);
        if (!merge) {
            gained_free(0, kind, slot, index);
            count_free(0, kind);
            return;
        }
        const unsigned limit = merge_limit(index, region);
        GPUMMU_ASSERT(limit > 0);
        lost_free(0, kind, slot);
        uncount_block(0, kind);
        merge_upward(1, index >> 1, kind, 1, limit);
    }
    // The highest order a free block holding `chunk` may reach by merging: blocks never
    // merge across a gap between regions, so a node of order `at` merges with its buddy
    // only if at < merge_limit (their parent lies inside the chunk's region, which is
    // `region` when the caller knows it: locate() found it).
    [[nodiscard]] GPUMMU_ALWAYS_INLINE unsigned merge_limit(u64 chunk,
                                                            std::size_t region) const noexcept
    {
        return detail::merge_limit_of(chunk, layout_.region_first[region],
                                      layout_.region_end[region], layout_.order_count - 1);
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE unsigned merge_limit(u64 chunk) const noexcept
    {
        return merge_limit(chunk, region_holding(chunk));
    }
    // Node (order, index) is free of `kind` now (its own state not yet written) and
    // `freed_chunks` chunks became free with it: merges it with same-kind free buddies
    // upward, up to order `limit` (merge_limit of its chunks), and inserts the result.
    // The free and cleared chunk totals change once, by the freed chunks (a merged
    // buddy's chunks stay free).
    GPUMMU_ALWAYS_INLINE void merge_upward(unsigned order, u64 index, Kind kind, u64 freed_chunks,
                                           unsigned limit) noexcept
    {
        const u64 wanted = kind == clean ? free_clean : free_dirty;
        while (order < limit) {
            u64 buddy = index ^ 1u;
            if (state(order, buddy) != wanted) break;
            clear_free(order, buddy, kind, none);
            uncount_block(order, kind);
            index >>= 1;
            ++order;
        }
        set_free(order, index, kind);
        count_block(order, kind);
        add_free_chunks(kind, freed_chunks);
    }

    // Index of the region that holds [first, end) entirely, or -1.
    [[nodiscard]] GPUMMU_ALWAYS_INLINE long region_of(u64 first, u64 end) const noexcept
    {
        if (layout_.region_count == 1)
            return layout_.region_first[0] <= first && end <= layout_.region_end[0] ? 0 : -1;
        return search_regions(first, end);
    }
    // The same with several regions: a binary search for the first region ending after `first`.
    [[nodiscard]] GPUMMU_NOINLINE long search_regions(u64 first, u64 end) const noexcept
    {
        std::size_t low = 0, high = layout_.region_count;
        while (low < high) {
            std::size_t middle = (low + high) / 2;
            if (layout_.region_end[middle] <= first)
                low = middle + 1;
            else
                high = middle;
        }
        if (low < layout_.region_count && layout_.region_first[low] <= first &&
            end <= layout_.region_end[low])
            return static_cast<long>(low);
        return -1;
    }
    // The region of a chunk that lies in one (a chunk being freed, or of a free block).
    [[nodiscard]] GPUMMU_ALWAYS_INLINE std::size_t region_holding(u64 chunk) const noexcept
    {
        long region = region_of(chunk, chunk + 1);
        GPUMMU_ASSERT(region >= 0);
        return static_cast<std::size_t>(region);
    }

    [[nodiscard]] BuddyBlock block_of(unsigned order, u64 index,
                                      bool cleared = false) const noexcept
    {
        return BuddyBlock{VramAddress{(index << order) << layout_.chunk_shift},
                          u64{1} << (order + layout_.chunk_shift), cleared};
    }

    [[nodiscard]] Result<void> locate(const BuddyBlock &block, Node &node) const noexcept
    {
        std::size_t region;
        return locate(block, node, region);
    }
    // The same, also saying which region holds the block.
    [[nodiscard]] GPUMMU_ALWAYS_INLINE Result<void> locate(const BuddyBlock &block, Node &node,
                                                           std::size_t &region) const noexcept
    {
        if (block.size < chunk_bytes() || !is_power_of_two(block.size))
            return failure(Error::invalid_argument);
        if (!block.address.is_aligned_to(block.size)) return failure(Error::misaligned);
        unsigned order = static_cast<unsigned>(std::countr_zero(block.size)) - layout_.chunk_shift;
        if (order >= layout_.order_count) return failure(Error::out_of_range);
        u64 first = block.address.value() >> layout_.chunk_shift;
        long found = region_of(first, first + (u64{1} << order));
        if (found < 0) return failure(Error::out_of_range);
        region = static_cast<std::size_t>(found);
        node = Node{order, first >> order};
        return success();
    }

    [[nodiscard]] Result<void> check_allocated(Node node) const noexcept
    {
        u64 value = state(node.order, node.index);
        if (value == allocated) return success();
        if (value != none) return failure(Error::double_free);
        // Inside a free block is a double free too; inside an allocated one, or split: not
        // a block that was handed out as such.
        for (unsigned order = node.order + 1; order < layout_.order_count; ++order) {
            u64 above = state(order, node.index >> (order - node.order));
            if (above == free_dirty || above == free_clean) return failure(Error::double_free);
            if (above == allocated) break;
        }
        return failure(Error::not_allocated);
    }

    // Is every chunk under node (order, index) free? Walks up to a covering block, or down
    // through a split node's children.
    [[nodiscard]] bool is_all_free(unsigned order, u64 index) const noexcept
    {
        for (unsigned above = order; above < layout_.order_count; ++above) {
            u64 value = state(above, index >> (above - order));
            if (value == free_dirty || value == free_clean) return true;
            if (value == allocated) return false;
        }
        return subtree_free(order, index);
    }
    [[nodiscard]] bool subtree_free(unsigned order, u64 index) const noexcept
    {
        u64 value = state(order, index);
        if (value == free_dirty || value == free_clean) return true;
        if (value == allocated || order == 0) return false;
        return subtree_free(order - 1, 2 * index) && subtree_free(order - 1, 2 * index + 1);
    }

    // Makes the (free) block exactly allocated. Used by the rollback of free().
    GPUMMU_NOINLINE Result<void> take_exact(const BuddyBlock &block) noexcept
    {
        Node node;
        GPUMMU_TRY(locate(block, node));
        if (!is_all_free(node.order, node.index)) return failure(Error::overlap);
        (void)take_free(node.order, node.index);
        return success();
    }
    // Makes node (order, index), every chunk of which is free, one allocated block: split
    // out of a covering free block, or collected from the free blocks of a split subtree
    // (cleared and dirty alike: the on-demand merge). Returns clean only if every chunk was.
    Kind take_free(unsigned order, u64 index) noexcept
    {
        for (unsigned above = order; above < layout_.order_count; ++above) {
            u64 covering = index >> (above - order);
            u64 value = state(above, covering);
            if (value == free_dirty || value == free_clean)
                return split_to(Node{above, covering}, order, index << order);
        }
        bool all_clean = true;
        clear_subtree(order, index, all_clean);
        set_state(order, index, allocated);
        return all_clean ? clean : dirty;
    }
    // Visits split nodes and free blocks only: O(free blocks under the node).
    void clear_subtree(unsigned order, u64 index, bool &all_clean) noexcept
    {
        u64 value = state(order, index);
        if (value == free_dirty || value == free_clean) {
            all_clean = all_clean && value == free_clean;
            remove_free(order, index, value == free_clean ? clean : dirty, none);
            return;
        }
        if (order == 0) return;
        clear_subtree(order - 1, 2 * index, all_clean);
        clear_subtree(order - 1, 2 * index + 1, all_clean);
        if (order == 1) clear_pair(index);
    }
    // Allocates exactly [first, end) (all free, inside one region) as its maximal aligned
    // blocks, written to `out` (which has room: pieces_of()).
    std::size_t collect(u64 first, u64 end, std::span<BuddyBlock> out) noexcept
    {
        std::size_t written = 0;
        for (u64 chunk = first; chunk < end;) {
            unsigned order = largest_order_at(chunk, end - chunk, layout_.order_count);
            Kind kind = take_free(order, chunk >> order);
            out[written++] = block_of(order, chunk >> order, kind == clean);
            chunk += u64{1} << order;
        }
        return written;
    }
    [[nodiscard]] std::size_t pieces_of(u64 first, u64 end) const noexcept
    {
        std::size_t pieces = 0;
        for (u64 chunk = first; chunk < end; ++pieces)
            chunk += u64{1} << largest_order_at(chunk, end - chunk, layout_.order_count);
        return pieces;
    }

    // Replaces allocated `node` by its first `keep` chunks (0 < keep < 2^order): frees the
    // tail with `kind`, writes the kept blocks (at most popcount(keep)) to `out`, each
    // marked `cleared` as the node was.
    std::size_t keep_prefix(Node node, u64 keep, Kind kind, bool cleared,
                            std::span<BuddyBlock> out) noexcept
    {
        set_state(node.order, node.index, none);
        std::size_t written = 0;
        u64 index = node.index;
        for (unsigned order = node.order; order > 0 && keep != 0; --order) {
            u64 half = u64{1} << (order - 1);
            u64 left = 2 * index, right = left + 1;
            if (keep >= half) {
                set_state(order - 1, left, allocated);
                out[written++] = block_of(order - 1, left, cleared);
                keep -= half;
                if (keep == 0) {
                    release_free_node(order - 1, right, kind);
                    break;
                }
                index = right;
            } else {
                release_free_node(order - 1, right, kind);
                index = left;
            }
        }
        return written;
    }
    // A node that was part of an allocated block becomes free (and merges).
    void release_free_node(unsigned order, u64 index, Kind kind) noexcept
    {
        set_state(order, index, allocated);
        release(order, index, kind);
    }

    // ---- requests -------------------------------------------------------------------------
    [[nodiscard]] Result<void> prepare(u64 size, const BuddyOptions &options,
                                       Request &request) const noexcept
    {
        if (size == 0) return failure(Error::invalid_argument);
        u64 min_block = options.min_block_size == 0 ? chunk_bytes() : options.min_block_size;
        if (!is_power_of_two(min_block)) return failure(Error::invalid_argument);
        min_block = std::max(min_block, chunk_bytes());
        if (options.alignment != 0 && !is_power_of_two(options.alignment))
            return failure(Error::invalid_argument);
        auto rounded = align_up(size, min_block);
        if (!rounded) return failure(Error::out_of_memory);
        request.chunks = *rounded >> layout_.chunk_shift;
        request.min_order =
            static_cast<unsigned>(std::countr_zero(min_block)) - layout_.chunk_shift;
        if (request.min_order >= layout_.order_count) return failure(Error::out_of_memory);
        u64 alignment = std::max(options.alignment, chunk_bytes());
        request.align_order =
            static_cast<unsigned>(std::countr_zero(alignment)) - layout_.chunk_shift;
        if (options.window_end <= options.window_begin) return failure(Error::invalid_argument);
        auto window_first = align_up(options.window_begin.value(), chunk_bytes());
        if (!window_first) return failure(Error::out_of_range);
        request.window_first =
            std::max(*window_first >> layout_.chunk_shift, layout_.region_first[0]);
        request.window_end = std::min(options.window_end.value() >> layout_.chunk_shift,
                                      layout_.region_end[layout_.region_count - 1]);
        if (request.window_end <= request.window_first) return failure(Error::out_of_range);
        request.top_down = options.top_down;
        request.preferred = options.prefer_cleared ? clean : dirty;
        request.whole_window = request.window_first <= layout_.region_first[0] &&
                               request.window_end >= layout_.region_end[layout_.region_count - 1];
        request.unrestricted =
            request.whole_window && u64{1} << request.align_order <= request.chunks;
        return success();
    }

    // One chunk promised by set_aside(): any free chunk serves, so it cannot run out.
    GPUMMU_NOINLINE Result<BuddyAllocation> allocate_set_aside(const Request &request,
                                                               std::span<BuddyBlock> out) noexcept
    {
        if (request.chunks != 1 || !request.unrestricted || set_aside_chunks_ == 0)
            return failure(Error::invalid_argument);
        Taken taken = take_whole_block(0, request.preferred, request.top_down);
        GPUMMU_ASSERT(taken.start != not_found);  // free chunks >= set aside >= 1
        if (taken.start == not_found) return failure(Error::out_of_memory);
        --set_aside_chunks_;
        out[0] = block_of(0, taken.start, taken.kind == clean);
        return BuddyAllocation{out.first(1), chunk_bytes()};
    }

    // Everything but a whole free block: kept out of allocate() so that the common case
    // stays small where it is inlined.
    GPUMMU_NOINLINE Result<BuddyAllocation>
    allocate_searching(const Request &request, bool contiguous, std::span<BuddyBlock> out) noexcept
    {
        Result<BuddyAllocation> fast =
            contiguous ? allocate_contiguous(request, out) : allocate_scattered(request, out);
        if (fast || fast.error() != Error::out_of_memory) return fast;
        // The fast searches look only at whole free blocks of one kind and give up after a
        // bounded number of misses; they left no trace. The exact search below looks at free
        // chunks whatever their kind and refuses only when no placement exists.
        return contiguous ? allocate_exact_run(request, out)
                          : allocate_exact_scattered(request, out);
    }

    // One allocated block of 2^order chunks, or not_found; `taken` is the kind it had.
    u64 take_block(const Request &request, unsigned order, Kind &taken) noexcept
    {
        if (request.whole_window && request.align_order <= order) {
            // Any free block of this order or above fits: the direct descent.
            Taken whole = take_whole_block(order, request.preferred, request.top_down);
            taken = whole.kind;
            return whole.start;
        }
        for (Kind kind : {request.preferred, request.preferred == clean ? dirty : clean}) {
            Node source;
            u64 start = find_piece(request, order, kind, source);
            if (start != not_found) {
                split_to(source, order, start, kind);
                taken = kind;
                return start;
            }
        }
        return not_found;
    }

    Result<BuddyAllocation> allocate_contiguous(const Request &request,
                                                std::span<BuddyBlock> out) noexcept
    {
        unsigned order = static_cast<unsigned>(std::bit_width(request.chunks - 1));
        if (is_power_of_two(request.chunks))
            order = static_cast<unsigned>(std::countr_zero(request.chunks));
        if (order >= layout_.order_count) return failure(Error::out_of_memory);
        if (std::size_t{count_ones(request.chunks)} > out.size())
            return failure(Error::invalid_argument);
        // Look for the rounded-up block; its unused tail goes back at once.
        Node source;
        Kind kind = request.preferred;
        u64 start = find_piece(request, order, kind, source);
        if (start == not_found) {
            kind = kind == clean ? dirty : clean;
            start = find_piece(request, order, kind, source);
        }
        if (start == not_found) return failure(Error::out_of_memory);
        split_to(source, order, start, kind);
        const Kind taken = kind;
        if (request.chunks == (u64{1} << order)) {
            out[0] = block_of(order, start >> order, taken == clean);
            return BuddyAllocation{out.first(1), request.chunks << layout_.chunk_shift};
        }
        std::size_t written =
            keep_prefix(Node{order, start >> order}, request.chunks, taken, taken == clean, out);
        return BuddyAllocation{out.first(written), request.chunks << layout_.chunk_shift};
    }

    Result<BuddyAllocation> allocate_scattered(const Request &request,
                                               std::span<BuddyBlock> out) noexcept
    {
        // Each block's `cleared` remembers the kind it was taken from, so a rollback frees
        // every block with its original kind and the merges rebuild exactly the previous state.
        u64 remaining = request.chunks;
        std::size_t written = 0;
        unsigned order = std::min(static_cast<unsigned>(std::bit_width(remaining)) - 1u,
                                  layout_.order_count - 1);
        while (remaining != 0) {
            while (order > request.min_order && (u64{1} << order) > remaining) --order;
            Kind taken = dirty;
            u64 start = written < out.size() ? take_block(request, order, taken) : not_found;
            if (start != not_found) {
                out[written++] = block_of(order, start >> order, taken == clean);
                remaining -= u64{1} << order;
                continue;
            }
            // Nothing of this order fits: smaller pieces, or give everything back.
            if (order > request.min_order && written < out.size()) {
                --order;
                continue;
            }
            Error error = written < out.size() ? Error::out_of_memory : Error::invalid_argument;
            for (std::size_t i = written; i-- > 0;) {
                Node node;
                (void)locate(out[i], node);
                release(node.order, node.index, out[i].cleared ? clean : dirty);
            }
            return failure(error);
        }
        return BuddyAllocation{out.first(written), request.chunks << layout_.chunk_shift};
    }

    // ---- the exact search -----------------------------------------------------------------
    // Used only after the fast searches failed. It walks free runs (maximal stretches of
    // free chunks of any kind inside one region and the window) in address order, upward
    // or downward, with two primitives: the nearest free block past a chunk (one summary
    // descent per non-empty order and kind) and the block holding a chunk (one node load
    // per order). Cost: O((free runs passed + free blocks read) x orders), every free run
    // read at most once per request; a contiguous search stops growing a run as soon as it
    // holds the placement. Nothing is written until a placement is known to exist.

    // A free run: chunks [first, end), all free, inside one region and the window.
    struct Run {
        u64 first = 0;
        u64 end = 0;
    };

    // The block holding `chunk` (the first order, from 0 up, whose node is not `none`) and
    // its state; false where the chunk lies in no block (outside every region).
    [[nodiscard]] bool block_holding(u64 chunk, Node &node, u64 &value) const noexcept
    {
        if (chunk < layout_.node_low[0] || chunk - layout_.node_low[0] >= layout_.node_count[0])
            return false;
        for (unsigned order = 0; order < layout_.order_count; ++order) {
            value = state(order, chunk >> order);
            if (value != none) {
                node = Node{order, chunk >> order};
                return true;
            }
        }
        return false;
    }
    [[nodiscard]] bool free_at(u64 chunk, Node &node) const noexcept
    {
        u64 value = none;
        return block_holding(chunk, node, value) && (value == free_dirty || value == free_clean);
    }

    // The lowest first chunk of a free block in [from, limit), or not_found.
    [[nodiscard]] u64 next_free_block(u64 from, u64 limit) const noexcept
    {
        u64 best = limit;
        for (Kind kind : {dirty, clean}) {
            for (u64 orders = nonempty_[kind]; orders != 0; orders &= orders - 1) {
                unsigned order = static_cast<unsigned>(std::countr_zero(orders));
                u64 first_node =
                    std::max((from + (u64{1} << order) - 1) >> order, layout_.node_low[order]);
                if (best == 0) continue;
                u64 last_node = (best - 1) >> order;  // blocks starting before `best`
                if (first_node > last_node) continue;
                u64 to = std::min(local(order, last_node), layout_.node_count[order] - 1);
                u64 found = first_free(order, kind, local(order, first_node), to);
                if (found != not_found) best = (found + layout_.node_low[order]) << order;
            }
        }
        return best < limit ? best : not_found;
    }

    // The highest end of a free block in (floor, to], or not_found.
    [[nodiscard]] u64 previous_free_end(u64 to, u64 floor) const noexcept
    {
        u64 best = floor;
        for (Kind kind : {dirty, clean}) {
            for (u64 orders = nonempty_[kind]; orders != 0; orders &= orders - 1) {
                unsigned order = static_cast<unsigned>(std::countr_zero(orders));
                if ((to >> order) == 0) continue;
                u64 last_node = (to >> order) - 1;  // blocks ending at or before `to`
                u64 first_node = std::max(best >> order, layout_.node_low[order]);  // after best
                if (last_node < first_node) continue;
                u64 top = std::min(local(order, last_node), layout_.node_count[order] - 1);
                u64 found = last_free(order, kind, local(order, first_node), top);
                if (found != not_found) best = (found + layout_.node_low[order] + 1) << order;
            }
        }
        return best > floor ? best : not_found;
    }

    // The lowest free run with a chunk in [from, window end), starting no lower than
    // `from`; grown upward until it holds `length` chunks from its first `align`-aligned
    // chunk, or cannot grow. False when there is none.
    [[nodiscard]] bool next_run(const Request &request, u64 from, u64 align, u64 length,
                                Run &run) const noexcept
    {
        if (from >= request.window_end) return false;
        Node node;
        u64 first = from;
        if (!free_at(from, node)) {
            first = next_free_block(from, request.window_end);
            if (first == not_found) return false;
            (void)free_at(first, node);
        }
        std::size_t region = region_holding(first);
        u64 limit = std::min(request.window_end, layout_.region_end[region]);
        u64 wanted = (first + align - 1) / align * align + length;
        u64 end = (node.index + 1) << node.order;
        while (end < limit && end < wanted && free_at(end, node))
            end = (node.index + 1) << node.order;
        run = Run{first, std::min(end, limit)};
        return true;
    }

    // The highest free run with a chunk in [window begin, to), ending no higher than `to`;
    // grown downward until it holds an `align`-aligned start of `length` chunks.
    [[nodiscard]] bool previous_run(const Request &request, u64 to, u64 align, u64 length,
                                    Run &run) const noexcept
    {
        if (to <= request.window_first) return false;
        Node node;
        u64 end = to;
        if (!free_at(to - 1, node)) {
            end = previous_free_end(to, request.window_first);
            if (end == not_found) return false;
            (void)free_at(end - 1, node);
        }
        std::size_t region = region_holding(end - 1);
        u64 floor = std::max(request.window_first, layout_.region_first[region]);
        u64 wanted = end >= length ? align_down(end - length, align) : 0;
        u64 first = node.index << node.order;
        while (first > floor && first > wanted && free_at(first - 1, node))
            first = node.index << node.order;
        run = Run{std::max(first, floor), end};
        return true;
    }

    // The lowest (top-down: highest) `align`-aligned start of `length` free chunks inside
    // one region and the window, or not_found.
    [[nodiscard]] u64 find_run(const Request &request, u64 length, u64 align) const noexcept
    {
        Run run;
        if (!request.top_down) {
            for (u64 from = request.window_first; next_run(request, from, align, length, run);
                 from = run.end) {
                u64 start = (run.first + align - 1) / align * align;
                if (start < run.end && run.end - start >= length) return start;
            }
        } else {
            for (u64 to = request.window_end; previous_run(request, to, align, length, run);
                 to = run.first) {
                if (run.end - run.first < length) continue;
                u64 start = align_down(run.end - length, align);
                if (start >= run.first) return start;
            }
        }
        return not_found;
    }

    // A contiguous request: one free run of the size, its start aligned to the alignment
    // (or the minimum block). If `out` cannot hold the blocks such a run splits into, the
    // run is looked for again aligned to the size rounded up to a power of two, which
    // splits into the fewest blocks (popcount of the size, checked by allocate_contiguous).
    GPUMMU_NOINLINE Result<BuddyAllocation> allocate_exact_run(const Request &request,
                                                               std::span<BuddyBlock> out) noexcept
    {
        const u64 length = request.chunks;
        u64 align = u64{1} << std::max(request.min_order, request.align_order);
        u64 start = find_run(request, length, align);
        if (start == not_found) return failure(Error::out_of_memory);
        if (pieces_of(start, start + length) > out.size()) {
            align = std::max(align, std::bit_ceil(length));
            start = find_run(request, length, align);
            if (start == not_found) return failure(Error::invalid_argument);
        }
        std::size_t written = collect(start, start + length, out);
        return BuddyAllocation{out.first(written), length << layout_.chunk_shift};
    }

    // A scattered request. Every block is a power of two >= the minimum block M and starts
    // at a multiple of S = max(M, alignment). So free memory offers slots: each S-aligned
    // chunk x that is free holds one block of at most min(S, free chunks from x), rounded
    // down to a power of two (its cap), and runs of whole slots may hold larger blocks.
    // Which caps can sum to exactly the request? Taking, from the largest cap down, the
    // largest power of two <= min(cap, what is left) finds a sum whenever one exists (an
    // exchange argument on powers of two; the model test checks it by brute force). The
    // plan counts slots per cap, runs that greedy on the counts, then takes the pieces
    // walking the runs again: full slots of one run as one range (its maximal blocks).
    struct SlotPlan {
        std::array<u64, max_orders> slots{};  // per level j: slots whose cap is M << j
        std::array<u64, max_orders> full{};   // pieces of exactly M << j to take
        std::array<u64, max_orders> tails{};  // smaller pieces to take in level-j slots
        unsigned top = 0;                     // level of a whole slot: S = M << top
    };

    // Visits free runs in the request's direction while `visit` returns true. A run stops
    // growing once it holds `length` chunks from its first `slot`-aligned chunk (whole slots
    // enough for the request on their own); its rest is the next run. Both walks of a
    // request pass the same length, so they see the same runs.
    template <class Visit>
    void for_each_run(const Request &request, u64 slot, u64 length, Visit &&visit) const noexcept
    {
        Run run;
        if (!request.top_down) {
            for (u64 from = request.window_first; next_run(request, from, slot, length, run);
                 from = run.end)
                if (!visit(run)) return;
        } else {
            for (u64 to = request.window_end; previous_run(request, to, slot, length, run);
                 to = run.first)
                if (!visit(run)) return;
        }
    }
    // Greedy over the slot counts, largest caps first; true when the pieces sum to the
    // request exactly (then plan.full and plan.tails say what to take).
    static bool plan_pieces(SlotPlan &plan, u64 chunks, unsigned min_order) noexcept
    {
        u64 remaining = chunks;
        for (unsigned level = plan.top + 1; level-- > 0;) {
            u64 piece = u64{1} << (min_order + level);
            plan.full[level] = std::min(plan.slots[level], remaining / piece);
            plan.tails[level] = 0;
            remaining -= plan.full[level] * piece;
            for (u64 left = plan.slots[level] - plan.full[level]; left != 0 && remaining != 0;
                 --left) {
                u64 smaller = std::bit_floor(remaining);  // < piece, a multiple of M
                plan.tails[level] |= smaller;
                remaining -= smaller;
            }
        }
        return remaining == 0;
    }
    [[nodiscard]] static bool plan_done(const SlotPlan &plan) noexcept
    {
        for (unsigned level = 0; level <= plan.top; ++level)
            if (plan.full[level] != 0 || plan.tails[level] != 0) return false;
        return true;
    }

    // Walks the slots of every run; with `commit`, takes the planned pieces. Returns the
    // number of blocks the plan takes.
    template <bool commit>
    std::size_t take_slots(const Request &request, u64 run_length, SlotPlan plan,
                           std::span<BuddyBlock> out) noexcept
    {
        const unsigned min_order = request.min_order;
        const u64 slot = u64{1} << (min_order + plan.top);
        std::size_t written = 0;
        auto take = [&](u64 first, u64 end) {
            if constexpr (commit) {
                written += collect(first, end, out.subspan(written));
            } else {
                written += pieces_of(first, end);
            }
        };
        auto take_tail_piece = [&](unsigned level, u64 at) {
            if (plan.full[level] != 0) {
                --plan.full[level];
                take(at, at + (u64{1} << (min_order + level)));
            } else if (plan.tails[level] != 0) {
                u64 piece = std::bit_floor(plan.tails[level]);
                plan.tails[level] &= ~piece;
                take(at, at + piece);
            }
        };
        for_each_run(request, slot, run_length, [&](const Run &run) {
            u64 first = (run.first + slot - 1) / slot * slot;
            if (first >= run.end) return true;
            u64 whole = (run.end - first) / slot;
            u64 tail = first + whole * slot;
            // Top-down takes the highest slots first: the partial one at the top.
            if (request.top_down && tail < run.end && run.end - tail >= (u64{1} << min_order))
                take_tail_piece(level_of(run.end - tail, min_order), tail);
            u64 ranged = std::min(whole, plan.full[plan.top]);
            plan.full[plan.top] -= ranged;
            if (ranged != 0) {
                if (request.top_down)
                    take(tail - ranged * slot, tail);
                else
                    take(first, first + ranged * slot);
            }
            for (u64 i = ranged; i < whole && plan.tails[plan.top] != 0; ++i) {
                u64 at = request.top_down ? tail - (i + 1) * slot : first + i * slot;
                take_tail_piece(plan.top, at);
            }
            if (!request.top_down && tail < run.end && run.end - tail >= (u64{1} << min_order))
                take_tail_piece(level_of(run.end - tail, min_order), tail);
            return !plan_done(plan);
        });
        return written;
    }
    // The level of the largest piece M << j that fits in `chunks` (>= M) chunks.
    static unsigned level_of(u64 chunks, unsigned min_order) noexcept
    {
        return static_cast<unsigned>(std::bit_width(chunks)) - 1u - min_order;
    }

    GPUMMU_NOINLINE Result<BuddyAllocation>
    allocate_exact_scattered(const Request &request, std::span<BuddyBlock> out) noexcept
    {
        SlotPlan plan;
        const unsigned min_order = request.min_order;
        plan.top = std::max(request.align_order, min_order) - min_order;
        const u64 slot = u64{1} << (min_order + plan.top);
        const u64 run_length = (request.chunks + slot - 1) / slot * slot;
        bool enough = false;
        // Count slots run by run; stop as soon as the slots seen can hold the request (more
        // slots only add choices, so the greedy's answer cannot turn back to no).
        for_each_run(request, slot, run_length, [&](const Run &run) {
            u64 first = (run.first + slot - 1) / slot * slot;
            if (first >= run.end) return true;
            u64 whole = (run.end - first) / slot;
            plan.slots[plan.top] += whole;
            u64 tail = first + whole * slot;
            if (tail < run.end && run.end - tail >= (u64{1} << min_order))
                ++plan.slots[level_of(run.end - tail, min_order)];
            enough = plan_pieces(plan, request.chunks, min_order);
            return !enough;
        });
        if (!enough) return failure(Error::out_of_memory);
        if (take_slots<false>(request, run_length, plan, out) > out.size())
            return failure(Error::invalid_argument);
        std::size_t written = take_slots<true>(request, run_length, plan, out);
        return BuddyAllocation{out.first(written), request.chunks << layout_.chunk_shift};
    }

    // ---- audit ----------------------------------------------------------------------------
    bool audit(unsigned order, u64 index, u64 &free_seen, u64 &cleared_seen, u64 &allocated_seen,
               std::array<std::array<u64, 2>, max_orders> &counts_seen) const noexcept
    {
        u64 value = state(order, index);
        if (value == allocated) {
            allocated_seen += u64{1} << order;
            return subtree_empty_below(order, index);
        }
        if (value == free_dirty || value == free_clean) {
            Kind kind = value == free_clean ? clean : dirty;
            free_seen += u64{1} << order;
            if (kind == clean) cleared_seen += u64{1} << order;
            ++counts_seen[order][kind];
            // A same-kind free buddy in the same region would have merged.
            u64 buddy = index ^ 1u;
            if (order + 1 < layout_.order_count && in_hull(order, buddy) &&
                state(order, buddy) == value) {
                u64 parent_first = (index >> 1) << (order + 1);
                if (region_of(parent_first, parent_first + (u64{2} << order)) >= 0) return false;
            }
            return subtree_empty_below(order, index);
        }
        if (order == 0) return false;  // a chunk in a region that belongs to no block
        return audit(order - 1, 2 * index, free_seen, cleared_seen, allocated_seen, counts_seen) &&
               audit(order - 1, 2 * index + 1, free_seen, cleared_seen, allocated_seen,
                     counts_seen);
    }
    // Nodes under a block hold no state of their own.
    bool subtree_empty_below(unsigned order, u64 index) const noexcept
    {
        for (unsigned below = order; below-- > 0;) {
            u64 first = index << (order - below), count = u64{1} << (order - below);
            for (u64 i = 0; i < count; ++i)
                if (state(below, first + i) != none) return false;
        }
        return true;
    }
    bool summaries_agree(unsigned order, Kind kind) const noexcept
    {
        if (u64 lone = lone_[order][kind]; lone != not_found) {
            // One free node, in lone_ only: the levels above 0 are empty.
            if (counts_[order][kind] != 1 || lone >= layout_.node_count[order]) return false;
            u64 value = state(order, lone + layout_.node_low[order]);
            if (value != (kind == clean ? free_clean : free_dirty)) return false;
            for (unsigned level = 1; level < layout_.level_count[order]; ++level)
                for (std::size_t word = 0; word < layout_.level_words[order][level]; ++word)
                    if (summary_word(order, kind, level, word) != 0) return false;
            return true;
        }
        for (unsigned level = 1; level < layout_.level_count[order]; ++level) {
            for (std::size_t word = 0; word < layout_.level_words[order][level]; ++word) {
                u64 expected = 0;
                for (unsigned bit = 0; bit < 64; ++bit) {
                    std::size_t below = word * 64 + bit;
                    if (below < layout_.level_words[order][level - 1] &&
                        summary_word(order, kind, level - 1, below) != 0)
                        expected |= u64{1} << bit;
                }
                if (summary_word(order, kind, level, word) != expected) return false;
            }
        }
        return true;
    }

    BuddyAllocator() noexcept = default;

    Layout layout_{};
    u64 *words_ = nullptr;
    u64 free_chunks_ = 0;
    u64 cleared_chunks_ = 0;
    u64 set_aside_chunks_ = 0;       // promised by set_aside(), not yet drawn (<= free_chunks_)
    std::array<u64, 2> nonempty_{};  // per kind: bit k set when order k has free blocks
    std::array<std::array<u64, 2>, max_orders> counts_{};
    // Per order and kind: the local index of the only free node when the summaries above
    // level 0 do not record it (see gained_free()), else not_found.
    std::array<std::array<u64, 2>, max_orders> lone_ = [] {
        std::array<std::array<u64, 2>, max_orders> all{};
        for (auto &order : all) order = {not_found, not_found};
        return all;
    }();
};

}  // namespace gpummu
