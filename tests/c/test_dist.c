/* test_dist.c — dist.h in one process (no launcher: what every plain run sees, in builds with and
 * without MPI): rank 0, size 1, the all-reduce leaves the block as it is, the gather copies, bad
 * blocks are refused with a message; ff_dist_share against a brute-force check of its contract.
 * The collectives across ranks run under mpirun in tests/e2e/mpi_*.sh. */
#include <stdlib.h>
#include <string.h>
#include "ff_test.h"
#include "fisherflow/dist.h"

static void no_launcher(void) {
    unsetenv("OMPI_COMM_WORLD_SIZE"); unsetenv("PMIX_RANK"); unsetenv("PMI_RANK"); unsetenv("PMI_SIZE");
}

FF_TEST(one_process) {
    no_launcher();
    FF_EXPECT(ff_dist_launched() == 0);
    FF_EXPECT(ff_dist_init(NULL, NULL) == FF_OK);       /* not launched: no MPI, one process */
    FF_EXPECT(ff_dist_active() == 0);
    FF_EXPECT(ff_dist_rank() == 0);
    FF_EXPECT(ff_dist_size() == 1);
    float x[5] = { 1.5f, -2.0f, 0.0f, 3.25f, 1e-30f }, y[5];
    memcpy(y, x, sizeof x);
    FF_EXPECT(ff_dist_allreduce_mean(x, 5) == FF_OK);
    FF_EXPECT(memcmp(x, y, sizeof x) == 0);
    double d[2] = { 0.25, 7.0 };
    FF_EXPECT(ff_dist_allreduce_sum_f64(d, 2) == FF_OK);
    FF_EXPECT(d[0] == 0.25 && d[1] == 7.0);
    FF_EXPECT(ff_dist_barrier() == FF_OK);
    float g[6] = { 0 };
    FF_EXPECT(ff_dist_gather_rows(g, x, 2, 2, 0) == FF_OK);
    FF_EXPECT(memcmp(g, x, 4 * sizeof(float)) == 0 && g[4] == 0 && g[5] == 0);
    FF_EXPECT(ff_dist_gather_rows(g, NULL, 0, 3, 1) == FF_OK);   /* an empty share is fine */
    FF_EXPECT(ff_dist_finalize() == FF_OK);
}

FF_TEST(bad_blocks) {
    float x[2] = { 1, 2 }, g[2];
    FF_EXPECT_ERROR(ff_dist_allreduce_mean(NULL, 3), FF_EINVAL, "ff_dist_allreduce_mean");
    FF_EXPECT_ERROR(ff_dist_allreduce_mean(x, -1), FF_EINVAL, "n=-1");
    FF_EXPECT_ERROR(ff_dist_allreduce_sum_f64(NULL, 1), FF_EINVAL, "ff_dist_allreduce_sum_f64");
    FF_EXPECT_ERROR(ff_dist_gather_rows(NULL, x, 1, 1, 0), FF_EINVAL, "dst");
    FF_EXPECT_ERROR(ff_dist_gather_rows(g, x, 1, 0, 0), FF_EINVAL, "row_len=0");
    FF_EXPECT_ERROR(ff_dist_gather_rows(g, NULL, 1, 1, 0), FF_EINVAL, "rows=1");
}

FF_TEST(timeout) {
    unsetenv("FF_DIST_TIMEOUT");
    double old = ff_dist_set_timeout(5.0);
    FF_EXPECT(old == 600.0, "default timeout %g", old);
    FF_EXPECT(ff_dist_set_timeout(old) == 5.0);
}

FF_TEST(launcher_env) {
    no_launcher();
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    FF_EXPECT(ff_dist_launched() == 1);
    /* a build without MPI refuses to be one of 2 ranks (each would run the whole job alone); a
     * build with MPI would initialise it here, which this test does not do */
    if (!ff_dist_built()) FF_EXPECT_ERROR(ff_dist_init(NULL, NULL), FF_EINVAL, "built without MPI");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMIX_RANK", "0", 1);
    FF_EXPECT(ff_dist_launched() == 1);
    no_launcher();
    FF_EXPECT(ff_dist_launched() == 0);
}

/* every row to exactly one rank, in rank order, sizes differing by at most one, larger ones first */
FF_TEST(share) {
    for (int size = 1; size <= 7; size++) {
        for (int64_t n = 0; n <= 40; n++) {
            int64_t next = 0, lo = n, hi = 0, prev = n + 1;
            for (int r = 0; r < size; r++) {
                int64_t first, count;
                ff_dist_share(n, r, size, &first, &count);
                FF_EXPECT(first == next, "n=%lld size=%d rank=%d first=%lld", (long long)n, size, r, (long long)first);
                FF_EXPECT(count <= prev);
                next += count;
                prev = count;
                if (count < lo) lo = count;
                if (count > hi) hi = count;
            }
            FF_EXPECT(next == n, "n=%lld size=%d covered %lld", (long long)n, size, (long long)next);
            FF_EXPECT(hi - lo <= 1);
        }
    }
}

FF_MAIN()
