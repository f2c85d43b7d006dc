// EntryBits, the per-table bit sets (mapped, sparse) that the page table asks "any" and
// "all" over ranges of entries: against a std::bitset, at every word edge and at random.
// PageTableNode::reset: a used node of either kind becomes blank.
#include <doctest/doctest.h>

#include <bitset>

#include "gpummu/paging/page_table_node.hpp"
#include "support/random.hpp"

using namespace gpummu;

namespace {

constexpr unsigned entries = EntryBits::capacity;

// Compile-time: a range inside one word, across a word edge, and the whole set.
constexpr bool compile_time_ranges()
{
    EntryBits bits;
    bits.assign(60, 8, true);  // 60..67: the end of word 0 and the start of word 1
    return bits.all(60, 8) && !bits.all(59, 9) && !bits.all(60, 9) && bits.any(0, 61) &&
           !bits.any(0, 60) && !bits.any(68, entries - 68) && bits.count(0, entries) == 8 &&
           bits.count() == 8 && !bits.none() && bits.all(64, 0) && !bits.any(64, 0);
}
static_assert(compile_time_ranges());

struct Model {
    std::bitset<entries> bits;
    bool any(unsigned first, unsigned count) const
    {
        for (unsigned i = first; i < first + count; ++i)
            if (bits.test(i)) return true;
        return false;
    }
    bool all(unsigned first, unsigned count) const
    {
        for (unsigned i = first; i < first + count; ++i)
            if (!bits.test(i)) return false;
        return true;
    }
    unsigned count(unsigned first, unsigned count) const
    {
        unsigned total = 0;
        for (unsigned i = first; i < first + count; ++i) total += bits.test(i) ? 1u : 0u;
        return total;
    }
    u32 chunk_mask() const
    {
        u32 mask = 0;
        for (unsigned chunk = 0; chunk < 32; ++chunk)
            if (any(chunk * 16, 16)) mask |= 1u << chunk;
        return mask;
    }
};

void check_against(const EntryBits &bits, const Model &model, unsigned first, unsigned count)
{
    CAPTURE(first);
    CAPTURE(count);
    REQUIRE(bits.any(first, count) == model.any(first, count));
    REQUIRE(bits.all(first, count) == model.all(first, count));
    REQUIRE(bits.count(first, count) == model.count(first, count));
}

}  // namespace

TEST_CASE("any, all and count agree with a bitset for every range starting or ending at a "
          "word edge")
{
    // One set bit, one clear bit and a full set, each at every word edge.
    for (unsigned edge = 0; edge <= entries; edge += 64) {
        for (int pattern = 0; pattern < 3; ++pattern) {
            EntryBits bits;
            Model model;
            if (pattern != 0) {
                bits.assign(0, entries, true);
                model.bits.set();
            }
            const unsigned probe = edge == entries ? entries - 1 : edge;
            if (pattern == 1) {
                bits.clear(probe);
                model.bits.reset(probe);
            } else if (pattern == 0) {
                bits.set(probe);
                model.bits.set(probe);
            }
            for (unsigned first = 0; first <= entries; ++first) {
                const unsigned from_edge = edge >= first ? edge - first : 0;
                check_against(bits, model, first, from_edge);  // ends at the edge
                if (first >= edge) check_against(bits, model, edge, first - edge);  // starts
            }
            REQUIRE(bits.chunk_mask() == model.chunk_mask());
            REQUIRE(bits.none() == model.bits.none());
        }
    }
}

TEST_CASE("random assigns and ranges agree with a bitset")
{
    testing::Random random(2024);
    EntryBits bits;
    Model model;
    for (int step = 0; step < 20000; ++step) {
        const auto first = static_cast<unsigned>(random.below(entries + 1));
        const auto count = static_cast<unsigned>(random.below(entries - first + 1));
        switch (random.below(4)) {
        case 0: {
            const bool value = random.below(2) == 1;
            bits.assign(first, count, value);
            for (unsigned i = first; i < first + count; ++i) model.bits.set(i, value);
            break;
        }
        case 1:
            if (first < entries) {
                const bool value = random.below(2) == 1;
                bits.assign(first, value);
                model.bits.set(first, value);
            }
            break;
        case 2:
            if (step % 500 == 0) {  // now and then everything goes (a big table emptied)
                bits.clear_all();
                model.bits.reset();
            }
            break;
        default: break;
        }
        check_against(bits, model, first, count);
        if (step % 64 == 0) {
            for (unsigned i = 0; i < entries; ++i) REQUIRE(bits.test(i) == model.bits.test(i));
            REQUIRE(bits.chunk_mask() == model.chunk_mask());
            REQUIRE(bits.count() == model.bits.count());
            REQUIRE(bits.none() == model.bits.none());
        }
    }
}

namespace {
// A node with every field changed from blank, bits set over the entries its kind can have.
PageTableNode used_node(bool big)
{
    PageTableNode node;
    node.page = TablePage{VramAddress{0x12345000}, TableSize::big_page};
    node.parent = 3;
    node.next = 9;
    node.children = big ? no_table_node : 4;
    node.parent_index = 17;
    node.live = 5;
    node.depth = 4;
    node.flags = PageTableNode::in_use | PageTableNode::retired | (big ? PageTableNode::big : 0);
    node.no_valid_4k = 0x80000001u;
    const unsigned last = big ? 31 : EntryBits::capacity - 1;
    for (unsigned entry : {0u, 7u, last}) {
        node.mapped.set(entry);
        node.sparse_backed.set(entry);
    }
    return node;
}

// Every field, the bitmaps included, as in a value-initialized node.
bool blank(const PageTableNode &node)
{
    return node == PageTableNode{};
}

constexpr bool reset_at_compile_time()
{
    PageTableNode node;
    node.flags = PageTableNode::big;
    node.live = 2;
    node.mapped.set(31);
    node.reset();
    return node.flags == 0 && node.live == 0 && node.mapped.none();
}
static_assert(reset_at_compile_time());
}  // namespace

TEST_CASE("a reset node is blank: a big-page table's (bits in its 32 entries) and a "
          "512-entry table's (bits anywhere)")
{
    for (bool big : {true, false}) {
        CAPTURE(big);
        PageTableNode node = used_node(big);
        REQUIRE_FALSE(blank(node));
        node.reset();
        CHECK(blank(node));
    }
    // A 512-entry table's reset clears its last word too: bits there are not left behind.
    PageTableNode small = used_node(false);
    small.mapped.assign(448, 64, true);
    small.reset();
    CHECK(small.mapped.none());
}
