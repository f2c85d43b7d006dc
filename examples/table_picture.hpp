// examples/table_picture.hpp: an SVG picture of a page-table tree (gpummu-inspect --svg).
//
//   level rows, top to bottom:  PD3  [####]
//                               PD2  [#..........]   [#......]
//                               ...
//                               PT   [####....] [##] (big-page tables dashed)
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

// Writes the picture of `tables` (in the walk's order: a parent before its children) to
// `path`; false when the file cannot be written.
template <MmuFormat F>
bool write_table_picture(const char *path, HostMemory &memory, std::span<const WalkedTable> tables)
{
    constexpr int max_tables_per_row = 40;
    constexpr double box_width = 120, box_height = 26, gap = 10, row_height = 80, left = 70,
                     top = 40;
    const std::size_t rows = F::levels.size();
    std::vector<int> placed(rows, 0), hidden(rows, 0);
    std::vector<double> x(tables.size(), -1), y(tables.size(), 0);
    std::vector<long> parent(tables.size(), -1);
    std::vector<long> last_at_level(rows, -1);
    for (std::size_t i = 0; i < tables.size(); ++i) {
        const std::size_t row = tables[i].level.depth;
        if (row > 0) parent[i] = last_at_level[row - 1];
        if (!tables[i].big_page_table) last_at_level[row] = static_cast<long>(i);
        if (placed[row] >= max_tables_per_row) {
            ++hidden[row];
            continue;
        }
        x[i] = left + placed[row] * (box_width + gap);
        y[i] = top + static_cast<double>(row) * row_height;
        ++placed[row];
    }
    int widest = 1;
    for (int count : placed) widest = std::max(widest, count);
    constexpr double legend_step = 200;  // five legend entries side by side
    const double width = std::max(left + widest * (box_width + gap) + 220, 10 + 5 * legend_step);
    const double height = top + static_cast<double>(rows) * row_height + 120;

    std::FILE *file = std::fopen(path, "w");
    if (file == nullptr) return false;
    std::fprintf(file,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                 "font-family=\"sans-serif\" font-size=\"11\">\n"
                 "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                 "<text x=\"10\" y=\"20\" font-size=\"14\">MMU %s page tables: %zu reached "
                 "from the root</text>\n",
                 width, height, F::name, tables.size());
    for (std::size_t row = 0; row < rows; ++row) {
        const double row_y = top + static_cast<double>(row) * row_height;
        std::fprintf(file, "<text x=\"10\" y=\"%.1f\">%s</text>\n", row_y + 17,
                     F::levels[row].name);
        if (hidden[row] > 0)
            std::fprintf(file, "<text x=\"%.1f\" y=\"%.1f\">+%d more</text>\n",
                         left + placed[row] * (box_width + gap), row_y + 17, hidden[row]);
    }
    for (std::size_t i = 0; i < tables.size(); ++i) {  // lines first, boxes over them
        if (x[i] < 0 || parent[i] < 0 || x[static_cast<std::size_t>(parent[i])] < 0) continue;
        const auto p = static_cast<std::size_t>(parent[i]);
        std::fprintf(file,
                     "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
                     x[p] + box_width / 2, y[p] + box_height, x[i] + box_width / 2, y[i]);
    }
    for (std::size_t i = 0; i < tables.size(); ++i) {
        if (x[i] < 0) continue;
        const auto kinds = entry_pictures<F>(memory, tables[i]);
        const double stripe = box_width / static_cast<double>(kinds.size());
        // Invalid entries are the box's background; the others are drawn over it, at least
        // 2 px wide so that one entry of a 512-entry table stays visible.
        std::fprintf(
            file, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
            x[i], y[i], box_width, box_height, entry_picture_colour(EntryPicture::invalid));
        for (std::size_t first = 0; first < kinds.size();) {
            std::size_t last = first;
            while (last + 1 < kinds.size() && kinds[last + 1] == kinds[first]) ++last;
            if (kinds[first] != EntryPicture::invalid)
                std::fprintf(file,
                             "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                             "fill=\"%s\"/>\n",
                             x[i] + static_cast<double>(first) * stripe, y[i],
                             std::max(static_cast<double>(last - first + 1) * stripe, 2.0),
                             box_height, entry_picture_colour(kinds[first]));
            first = last + 1;
        }
        std::fprintf(file,
                     "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                     "stroke=\"#222\"%s><title>%s%s at 0x%" PRIx64 ", VA from 0x%" PRIx64
                     "</title></rect>\n",
                     x[i], y[i], box_width, box_height,
                     tables[i].big_page_table ? " stroke-dasharray=\"4 2\"" : "",
                     tables[i].big_page_table ? "big-page " : "",
                     F::levels[tables[i].level.depth].name, tables[i].address.value(),
                     tables[i].first_va.value());
        std::fprintf(file, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\">0x%" PRIx64 "</text>\n",
                     x[i], y[i] + box_height + 11, tables[i].address.value());
    }
    const double legend_y = top + static_cast<double>(rows) * row_height + 10;
    const EntryPicture legend[] = {EntryPicture::pointer, EntryPicture::page, EntryPicture::sparse,
                                   EntryPicture::no_valid_4k, EntryPicture::invalid};
    double legend_x = 10;
    for (EntryPicture kind : legend) {
        std::fprintf(file,
                     "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" fill=\"%s\" "
                     "stroke=\"#222\"/><text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                     legend_x, legend_y, entry_picture_colour(kind), legend_x + 18, legend_y + 11,
                     entry_picture_name(kind));
        legend_x += legend_step;
    }
    std::fprintf(file,
                 "<text x=\"10\" y=\"%.1f\">dashed boxes: big-page (64 KiB) tables; each box "
                 "spans its table's entries left to right</text>\n</svg>\n",
                 legend_y + 40);
    return std::fclose(file) == 0;
}

}  // namespace gpummu
