// examples/table_picture.hpp: an SVG picture of a page-table tree (gpummu-inspect --svg).
//
//   level rows, top to bottom:  PD3  [####]
//                               PD2  [#..........]   [#......]
//                               ...
//                               PT   [####....] [##] (big-page tables dashed)
//
// Below a tree, gpummu-demo draws a VRAM map: one square per 1/4096 of VRAM, coloured by
// what the buddy says holds it (free, free and known zero, allocated, page tables, or not
// the buddy's at all).
//
// Each table is a box; its entries are stripes coloured by kind (consecutive entries of one
// kind merge into one stripe, at least 2 px wide unless invalid): table pointer, page (a PTE: 4
// KiB, 64 KiB, or a large page in a directory), sparse, NV4K (a big PTE that hides its 4 KiB PTEs),
// invalid. A line joins each table to its parent. Rows hold at most `max_tables_per_row` boxes; the
// rest are counted in a note. Tools only (hosted, stdio).
#pragma once

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <span>
#include <vector>

#include "gpummu/format/format_concepts.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/table_walk.hpp"

namespace gpummu {

enum class EntryPicture : u8 { pointer, page, sparse, no_valid_4k, invalid };

inline constexpr const char *entry_picture_colour(EntryPicture kind)
{
    switch (kind) {
    case EntryPicture::pointer: return "#4878d0";
    case EntryPicture::page: return "#3a9a4a";
    case EntryPicture::sparse: return "#e8b53a";
    case EntryPicture::no_valid_4k: return "#a05ac8";
    case EntryPicture::invalid: return "#e6e6e6";
    }
    return "#000000";
}
inline constexpr const char *entry_picture_name(EntryPicture kind)
{
    switch (kind) {
    case EntryPicture::pointer: return "table pointer";
    case EntryPicture::page: return "page (PTE)";
    case EntryPicture::sparse: return "sparse";
    case EntryPicture::no_valid_4k: return "NV4K (big PTE hides 4 KiB PTEs)";
    case EntryPicture::invalid: return "invalid";
    }
    return "?";
}

template <MmuFormat F>
EntryPicture picture_of_pte(typename F::Pte pte)
{
    switch (pte.state()) {
    case PteState::valid: return EntryPicture::page;
    case PteState::sparse: return EntryPicture::sparse;
    case PteState::no_valid_4k: return EntryPicture::no_valid_4k;
    default: return EntryPicture::invalid;
    }
}

// The kinds of a table's entries, read from memory (invalid where a read fails).
template <MmuFormat F>
std::vector<EntryPicture> entry_pictures(HostMemory &memory, const WalkedTable &table)
{
    const LevelDescriptor &level =
        table.big_page_table ? F::big_page_table : F::levels[table.level.depth];
    std::vector<EntryPicture> kinds(level.entry_count(), EntryPicture::invalid);
    for (u64 index = 0; index < level.entry_count(); ++index) {
        std::array<u64, 2> words{};
        const VramAddress at = table.address + index * level.entry_bytes;
        if (!memory.read(at, std::span<u64>(words.data(), level.entry_bytes / 8))) continue;
        if (level.dual) {
            auto dual = F::DualPde::from_raw(words[0], words[1]);
            kinds[index] = dual.is_pte()                      ? picture_of_pte<F>(dual.as_pte())
                           : dual.state() == PdeState::valid  ? EntryPicture::pointer
                           : dual.state() == PdeState::sparse ? EntryPicture::sparse
                                                              : EntryPicture::invalid;
        } else if (!table.big_page_table && table.level.depth + 1u < F::levels.size()) {
            auto pde = F::Pde::from_raw(words[0]);
            kinds[index] = pde.is_pte()                      ? picture_of_pte<F>(pde.as_pte())
                           : pde.state() == PdeState::valid  ? EntryPicture::pointer
                           : pde.state() == PdeState::sparse ? EntryPicture::sparse
                                                             : EntryPicture::invalid;
        } else {
            kinds[index] = picture_of_pte<F>(F::Pte::from_raw(words[0]));
        }
    }
    return kinds;
}

// The tree part of a picture: laid out from `tables` (in the walk's order: a parent before
// its children), then drawn at any height in an SVG being written.
template <MmuFormat F>
class TableTreePicture {
public:
    static constexpr int max_tables_per_row = 40;
    static constexpr double box_width = 120, box_height = 26, gap = 10, row_height = 80, left = 70,
                            title_height = 30, legend_step = 240;

    TableTreePicture(HostMemory &memory, std::span<const WalkedTable> tables)
        : memory_(memory),
          tables_(tables),
          placed_(F::levels.size(), 0),
          hidden_(F::levels.size(), 0),
          x_(tables.size(), -1),
          parent_(tables.size(), -1)
    {
        std::vector<long> last_at_level(F::levels.size(), -1);
        for (std::size_t i = 0; i < tables.size(); ++i) {
            const std::size_t row = tables[i].level.depth;
            if (row > 0) parent_[i] = last_at_level[row - 1];
            if (!tables[i].big_page_table) last_at_level[row] = static_cast<long>(i);
            if (placed_[row] >= max_tables_per_row) {
                ++hidden_[row];
                continue;
            }
            x_[i] = left + placed_[row] * (box_width + gap);
            ++placed_[row];
        }
    }
    [[nodiscard]] double width() const
    {
        int widest = 1;
        for (int count : placed_) widest = std::max(widest, count);
        return std::max(left + widest * (box_width + gap) + 220, 10 + 5 * legend_step);
    }
    [[nodiscard]] double height() const
    {
        return title_height + static_cast<double>(F::levels.size()) * row_height + 80;
    }
    // Draws the title, the rows, the boxes and the legend from `top` down.
    void draw(std::FILE *file, double top, const char *title) const
    {
        std::fprintf(file,
                     "<text x=\"10\" y=\"%.1f\" font-size=\"14\">%s: MMU %s, %zu tables "
                     "reached from the root</text>\n",
                     top + 18, title, F::name, tables_.size());
        const double first_row = top + title_height + 10;
        auto y_of = [&](std::size_t i) {
            return first_row + static_cast<double>(tables_[i].level.depth) * row_height;
        };
        for (std::size_t row = 0; row < F::levels.size(); ++row) {
            const double row_y = first_row + static_cast<double>(row) * row_height;
            std::fprintf(file, "<text x=\"10\" y=\"%.1f\">%s</text>\n", row_y + 17,
                         F::levels[row].name);
            if (hidden_[row] > 0)
                std::fprintf(file, "<text x=\"%.1f\" y=\"%.1f\">+%d more</text>\n",
                             left + placed_[row] * (box_width + gap), row_y + 17, hidden_[row]);
        }
        for (std::size_t i = 0; i < tables_.size(); ++i) {  // lines first, boxes over them
            if (x_[i] < 0 || parent_[i] < 0 || x_[static_cast<std::size_t>(parent_[i])] < 0)
                continue;
            const auto p = static_cast<std::size_t>(parent_[i]);
            std::fprintf(
                file, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
                x_[p] + box_width / 2, y_of(p) + box_height, x_[i] + box_width / 2, y_of(i));
        }
        for (std::size_t i = 0; i < tables_.size(); ++i)
            if (x_[i] >= 0) draw_box(file, tables_[i], x_[i], y_of(i));
        const double legend_y = first_row + static_cast<double>(F::levels.size()) * row_height;
        const EntryPicture legend[] = {EntryPicture::pointer, EntryPicture::page,
                                       EntryPicture::sparse, EntryPicture::no_valid_4k,
                                       EntryPicture::invalid};
        double legend_x = 10;
        for (EntryPicture kind : legend) {
            std::fprintf(file,
                         "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\" "
                         "stroke=\"#222\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                         legend_x, legend_y, entry_picture_colour(kind), legend_x + 18,
                         legend_y + 11, entry_picture_name(kind));
            legend_x += legend_step;
        }
        std::fprintf(file,
                     "<text x=\"10\" y=\"%.1f\">dashed boxes: big-page (64 KiB) tables; each box "
                     "spans its table's entries left to right</text>\n",
                     legend_y + 34);
    }

private:
    void draw_box(std::FILE *file, const WalkedTable &table, double x, double y) const
    {
        const auto kinds = entry_pictures<F>(memory_, table);
        const double stripe = box_width / static_cast<double>(kinds.size());
        // Invalid entries are the box's background; the others are drawn over it, at least
        // 2 px wide so that one entry of a 512-entry table stays visible.
        std::fprintf(file,
                     "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                     x, y, box_width, box_height, entry_picture_colour(EntryPicture::invalid));
        for (std::size_t first = 0; first < kinds.size();) {
            std::size_t last = first;
            while (last + 1 < kinds.size() && kinds[last + 1] == kinds[first]) ++last;
            if (kinds[first] != EntryPicture::invalid)
                std::fprintf(file,
                             "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                             "fill=\"%s\"/>\n",
                             x + static_cast<double>(first) * stripe, y,
                             std::max(static_cast<double>(last - first + 1) * stripe, 2.0),
                             box_height, entry_picture_colour(kinds[first]));
            first = last + 1;
        }
        std::fprintf(file,
                     "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                     "stroke=\"#222\"%s><title>%s%s at 0x%" PRIx64 ", VA from 0x%" PRIx64
                     "</title></rect>\n",
                     x, y, box_width, box_height,
                     table.big_page_table ? " stroke-dasharray=\"4 2\"" : "",
                     table.big_page_table ? "big-page " : "", F::levels[table.level.depth].name,
                     table.address.value(), table.first_va.value());
        std::fprintf(file, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">0x%" PRIx64 "</text>\n", x,
                     y + box_height + 11, table.address.value());
    }

    HostMemory &memory_;
    std::span<const WalkedTable> tables_;
    std::vector<int> placed_, hidden_;
    std::vector<double> x_;
    std::vector<long> parent_;
};

// What a stretch of VRAM holds, for the VRAM map: later kinds win where a cell holds
// several (a 4 KiB table inside a cell of allocated memory shows as a table).
enum class VramUse : u8 { unmanaged, free_dirty, free_cleared, allocated, tables };
struct VramSpan {
    u64 begin = 0, end = 0;
    VramUse use = VramUse::unmanaged;
};

inline const char *vram_use_colour(VramUse use)
{
    switch (use) {
    case VramUse::unmanaged: return "#9e9e9e";
    case VramUse::free_dirty: return "#f2f2f2";
    case VramUse::free_cleared: return "#bfe3f7";
    case VramUse::allocated: return "#3a9a4a";
    case VramUse::tables: return "#d65f5f";
    }
    return "#000000";
}
inline const char *vram_use_name(VramUse use)
{
    switch (use) {
    case VramUse::unmanaged: return "not the buddy's (firmware)";
    case VramUse::free_dirty: return "free";
    case VramUse::free_cleared: return "free, known zero";
    case VramUse::allocated: return "allocated";
    case VramUse::tables: return "page tables";
    }
    return "?";
}

// A VRAM map: `cells` squares, 64 to a row, each covering vram_end / cells bytes and
// coloured by the highest VramUse of the spans meeting it. Returns the height drawn.
inline constexpr double vram_map_height(std::size_t cells)
{
    return 80 + static_cast<double>(cells / 64 + 1) * 10;
}
inline void draw_vram_map(std::FILE *file, std::span<const VramSpan> spans, u64 vram_end,
                          std::size_t cells, double top, const char *title)
{
    std::fprintf(file,
                 "<text x=\"10\" y=\"%.1f\" font-size=\"14\">%s: %" PRIu64
                 " MiB of VRAM, one square per %" PRIu64 " KiB</text>\n",
                 top + 18, title, vram_end >> 20, (vram_end / cells) >> 10);
    const u64 cell_bytes = vram_end / cells;
    std::vector<VramUse> use(cells, VramUse::unmanaged);
    for (const VramSpan &span : spans)
        for (u64 cell = span.begin / cell_bytes; cell < cells && cell * cell_bytes < span.end;
             ++cell)
            use[cell] = std::max(use[cell], span.use);
    // One rectangle per run of equal squares in a row.
    for (std::size_t cell = 0; cell < cells;) {
        std::size_t run = 1;
        while (cell + run < cells && (cell + run) % 64 != 0 && use[cell + run] == use[cell]) ++run;
        std::fprintf(file, "<rect x=\"%zu\" y=\"%.1f\" width=\"%zu\" height=\"9\" fill=\"%s\"/>\n",
                     10 + (cell % 64) * 10, top + 30 + static_cast<double>(cell / 64) * 10,
                     run * 10 - 1, vram_use_colour(use[cell]));
        cell += run;
    }
    const double legend_y = top + 30 + static_cast<double>(cells / 64 + 1) * 10 + 6;
    double legend_x = 10;
    for (VramUse kind : {VramUse::unmanaged, VramUse::free_dirty, VramUse::free_cleared,
                         VramUse::allocated, VramUse::tables}) {
        std::fprintf(file,
                     "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\" "
                     "stroke=\"#222\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                     legend_x, legend_y, vram_use_colour(kind), legend_x + 18, legend_y + 11,
                     vram_use_name(kind));
        legend_x += 200;
    }
}

inline void svg_begin(std::FILE *file, double width, double height)
{
    std::fprintf(file,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                 "font-family=\"sans-serif\" font-size=\"11\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                 width, height);
}

// Writes the picture of `tables` to `path`; false when the file cannot be written.
template <MmuFormat F>
bool write_table_picture(const char *path, HostMemory &memory, std::span<const WalkedTable> tables)
{
    const TableTreePicture<F> tree(memory, tables);
    std::FILE *file = std::fopen(path, "w");
    if (file == nullptr) return false;
    svg_begin(file, tree.width(), tree.height());
    tree.draw(file, 0, "Page tables");
    std::fputs("</svg>\n", file);
    return std::fclose(file) == 0;
}

// The tree above a VRAM map (gpummu-demo --svg).
template <MmuFormat F>
bool write_tree_and_vram_picture(const char *path, HostMemory &memory,
                                 std::span<const WalkedTable> tables, const char *tree_title,
                                 std::span<const VramSpan> spans, u64 vram_end)
{
    const TableTreePicture<F> tree(memory, tables);
    constexpr std::size_t cells = 4096;
    std::FILE *file = std::fopen(path, "w");
    if (file == nullptr) return false;
    svg_begin(file, std::max(tree.width(), 10.0 + 64 * 10 + 10),
              tree.height() + vram_map_height(cells));
    tree.draw(file, 0, tree_title);
    draw_vram_map(file, spans, vram_end, cells, tree.height(), "VRAM (buddy allocator)");
    std::fputs("</svg>\n", file);
    return std::fclose(file) == 0;
}

}  // namespace gpummu
