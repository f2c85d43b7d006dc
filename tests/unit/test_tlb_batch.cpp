// TlbBatch: what it records, merging, finishing through an invalidator, failures.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/paging/tlb_batch.hpp"

using namespace gpummu;

namespace {
struct RecordingInvalidator {
    std::vector<TlbInvalidation> issued;
    bool fail = false;
    Result<void> invalidate(const TlbInvalidation &invalidation)
    {
        if (fail) return failure(Error::timeout);
        issued.push_back(invalidation);
        return success();
    }
};
static_assert(TlbInvalidator<RecordingInvalidator>);

constexpr PhysicalAddress pdb{0x200000};
}  // namespace

TEST_CASE("an empty batch finishes without an invalidate")
{
    RecordingInvalidator invalidator;
    TlbBatch batch(pdb, Aperture::video, false);
    CHECK_FALSE(batch.pending());
    REQUIRE(batch.finish(invalidator));
    CHECK(invalidator.issued.empty());
}

TEST_CASE("writes record the shallowest level; downgrades add ack and membar")
{
    RecordingInvalidator invalidator;
    TlbBatch batch(pdb, Aperture::video, false);
    batch.record_write(Level{4});
    batch.record_write(Level{2});
    batch.record_write(Level{3});
    CHECK(batch.pending());
    CHECK(batch.invalidation().shallowest_level == Level{2});
    CHECK_FALSE(batch.invalidation().ack_globally);
    batch.record_downgrade(Level{5});
    CHECK(batch.invalidation().shallowest_level == Level{2});
    CHECK(batch.invalidation().ack_globally);
    CHECK(batch.invalidation().sys_membar);
    REQUIRE(batch.finish(invalidator));
    REQUIRE(invalidator.issued.size() == 1);
    CHECK(invalidator.issued[0] ==
          TlbInvalidation{pdb, Aperture::video, Level{2}, true, true, false});
    CHECK_FALSE(batch.pending());
    REQUIRE(batch.finish(invalidator));  // finishing twice issues nothing more
    CHECK(invalidator.issued.size() == 1);
}

TEST_CASE("batches of one address space merge into one invalidate")
{
    RecordingInvalidator invalidator;
    TlbBatch first(pdb, Aperture::video, true);
    first.record_write(Level{5});
    TlbBatch second(pdb, Aperture::video, true);
    second.record_downgrade(Level{3});
    REQUIRE(first.merge(std::move(second)));
    CHECK_FALSE(second.pending());  // NOLINT(bugprone-use-after-move): checked on purpose
    CHECK(first.invalidation().shallowest_level == Level{3});
    CHECK(first.invalidation().ack_globally);
    CHECK(first.invalidation().hub_only);
    REQUIRE(first.finish(invalidator));
    CHECK(invalidator.issued.size() == 1);

    TlbBatch other_space(PhysicalAddress{0x400000}, Aperture::video, true);
    other_space.record_write(Level{1});
    TlbBatch mine(pdb, Aperture::video, true);
    CHECK(mine.merge(std::move(other_space)).error() == Error::invalid_argument);
    CHECK(other_space.pending());  // refused: the obligation stays where it was
    other_space.abandon();
}

TEST_CASE("a failed invalidate leaves the batch pending until retried")
{
    RecordingInvalidator invalidator;
    invalidator.fail = true;
    TlbBatch batch(pdb, Aperture::system_coherent, false);
    batch.record_write(Level{0});
    CHECK(batch.finish(invalidator).error() == Error::timeout);
    CHECK(batch.pending());
    invalidator.fail = false;
    REQUIRE(batch.finish(invalidator));
    CHECK(invalidator.issued.size() == 1);
    CHECK(invalidator.issued[0].pdb_aperture == Aperture::system_coherent);
}

TEST_CASE("moving a batch moves the obligation")
{
    RecordingInvalidator invalidator;
    TlbBatch batch(pdb, Aperture::video, false);
    batch.record_write(Level{2});
    TlbBatch moved(std::move(batch));
    CHECK_FALSE(batch.pending());  // NOLINT(bugprone-use-after-move)
    CHECK(moved.pending());
    REQUIRE(moved.finish(invalidator));
}
