/*
 * harness.c: a C host for libstspiVastDataMT.so.
 *
 * It loads the plug-in with dlopen, resolves every stspi_* entry point with dlsym (typed from
 * the checked-in header, never re-declared by hand) and replays what NetBackup's processes
 * do: discovery (bpstsinfo), a backup and its checkpoint restart (bptm), restore (bptm/bpdm),
 * listing, duplication (copy_image), an optimized synthetic full and extent-based duplication
 * (include_in_image, copy_extent) and expiry (nbdelete), then a table of bad inputs, then
 * plug-in shutdown with an image still open for writing.
 *
 * Usage: harness <path to libstspiVastDataMT.so> <work dir> [server name]
 *   <work dir>/mnt is the [server.nfs] mount of the config named by $VAST_OST_CONFIG, with
 *   LSU directories lsu1 and lsu2 under it. The server name defaults to VastData:testcluster.
 *
 * Every check prints PASS or FAIL; the last line is "N passed, N failed" and the exit status
 * is non-zero when anything failed. Data is deterministic pseudo-random (a function of the
 * image's seed and the byte offset), so restore is verified without keeping a copy.
 *
 * C99 plus POSIX; build: cc -std=c99 -Wall -Wextra -Werror -I include harness.c -ldl -pthread
 */

#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stspi_vastdata.h"

/* ---------------------------------------------------------------------------------------- */
/* The plug-in's entry points                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Every function of stspi_vastdata.h. The pointer types come from the header's prototypes. */
#define STSPI_FUNCTIONS(X)                                                                     \
    X(stspi_init)                                                                              \
    X(stspi_terminate)                                                                         \
    X(stspi_get_plugin_info)                                                                   \
    X(stspi_claim)                                                                             \
    X(stspi_open_server)                                                                       \
    X(stspi_close_server)                                                                      \
    X(stspi_get_server_prop)                                                                   \
    X(stspi_get_server_prop_byname)                                                            \
    X(stspi_open_lsu_list)                                                                     \
    X(stspi_list_lsu)                                                                          \
    X(stspi_close_lsu_list)                                                                    \
    X(stspi_get_lsu_prop_byname)                                                               \
    X(stspi_create_image)                                                                      \
    X(stspi_open_image)                                                                        \
    X(stspi_write_image)                                                                       \
    X(stspi_flush)                                                                             \
    X(stspi_read_image)                                                                        \
    X(stspi_close_image)                                                                       \
    X(stspi_delete_image)                                                                      \
    X(stspi_get_image_prop)                                                                    \
    X(stspi_get_image_prop_byname)                                                             \
    X(stspi_open_image_list)                                                                   \
    X(stspi_list_image)                                                                        \
    X(stspi_close_image_list)                                                                  \
    X(stspi_write_image_meta)                                                                  \
    X(stspi_read_image_meta)                                                                   \
    X(stspi_copy_image)                                                                        \
    X(stspi_include_in_image)                                                                  \
    X(stspi_open_target_server)                                                                \
    X(stspi_close_target_server)                                                               \
    X(stspi_copy_extent)                                                                       \
    X(stspi_set_image_retention)                                                               \
    X(stspi_label_lsu)                                                                         \
    X(stspi_get_lsu_rep_prop)                                                                  \
    X(stspi_async_copy_image)                                                                  \
    X(stspi_async_wait)                                                                        \
    X(stspi_async_cancel)                                                                      \
    X(stspi_open_evchannel)                                                                    \
    X(stspi_get_event)                                                                         \
    X(stspi_get_event_payload)                                                                 \
    X(stspi_close_evchannel)

#define DECLARE_FN(f) __typeof__(f) *f;
#define COUNT_FN(f) +1

static struct {
    STSPI_FUNCTIONS(DECLARE_FN)
} P;

enum { N_FUNCTIONS = 0 STSPI_FUNCTIONS(COUNT_FN) };

/* ---------------------------------------------------------------------------------------- */
/* Results                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int n_pass, n_fail;

static const char *status_name(int s)
{
    static char other[8][32];
    static unsigned next;
    char *buf;
    switch (s) {
    case STS_EOK: return "STS_EOK";
    case STS_EINVAL: return "STS_EINVAL";
    case STS_EBUSY: return "STS_EBUSY";
    case STS_ENO_MORE_ENTRIES: return "STS_ENO_MORE_ENTRIES";
    case STS_ESYSCALL: return "STS_ESYSCALL";
    case STS_ENOENT: return "STS_ENOENT";
    case STS_ENET: return "STS_ENET";
    case STS_EACCESS: return "STS_EACCESS";
    case STS_EPLUGIN: return "STS_EPLUGIN";
    case STS_ECLAIM: return "STS_ECLAIM";
    case STS_EHANDLE: return "STS_EHANDLE";
    case STS_ECONFIG: return "STS_ECONFIG";
    case STS_ENOTINIT: return "STS_ENOTINIT";
    case STS_EVERSION: return "STS_EVERSION";
    case STS_EEXIST: return "STS_EEXIST";
    case STS_ENOSPC: return "STS_ENOSPC";
    case STS_ESTATE: return "STS_ESTATE";
    case STS_ECORRUPT: return "STS_ECORRUPT";
    case STS_EAUTH: return "STS_EAUTH";
    case STS_ECONNECT: return "STS_ECONNECT";
    case STS_ETLS: return "STS_ETLS";
    case STS_ENOTSUP: return "STS_ENOTSUP";
    case STS_E2BIG: return "STS_E2BIG";
    default:
        buf = other[next++ % 8];
        snprintf(buf, sizeof other[0], "status %d", s);
        return buf;
    }
}

/* A check that is not a status comparison. */
static int check(int ok, const char *what, const char *fmt, ...)
{
    if (ok) {
        n_pass++;
        printf("PASS  %s\n", what);
    } else {
        va_list ap;
        n_fail++;
        printf("FAIL  %s: ", what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
    return ok;
}

/* A call that must return `expected`. */
static int expect(const char *what, int expected, int got)
{
    return check(expected == got, what, "expected %s, got %s", status_name(expected),
                 status_name(got));
}

#define TRY(what, call) expect((what), STS_EOK, (call))

/* One row of the bad-input table: description, the call (as text), expected and got. */
static int row(const char *desc, const char *call, int expected, int got)
{
    int ok = expected == got;
    if (ok)
        n_pass++;
    else
        n_fail++;
    printf("%s  [bad input] %s: expected %s, got %s", ok ? "PASS" : "FAIL", desc,
           status_name(expected), status_name(got));
    if (!ok)
        printf("  <- %s", call);
    printf("\n");
    fflush(stdout);
    return ok;
}

static void section(const char *name)
{
    printf("\n== %s\n", name);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------------- */
/* Deterministic data                                                                        */
/* ---------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Byte `off` of a data stream is a function of (seed, off) alone: random access for free. */
static void fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t p = off + i;
        uint64_t v = splitmix64(seed ^ ((p >> 3) * 0xD6E8FEB86659FD93ULL));
        unsigned sh = (unsigned)(p & 7);
        for (; sh < 8 && i < len; sh++, i++)
            buf[i] = (unsigned char)(v >> (8 * sh));
    }
}

static uint64_t name_seed(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 0x100000001b3ULL;
    return h;
}

/* The harness's own PRNG for offsets and lengths (fixed seed: runs are reproducible). */
static uint64_t rng_state = 0x5eed5eed5eedULL;
static uint64_t rnd(uint64_t bound)
{
    rng_state = splitmix64(rng_state);
    return bound ? rng_state % bound : 0;
}

#define BLOCK (256u * 1024u)
#define BUF_SIZE (2u * 1024u * 1024u)
static unsigned char *buf_data;   /* what goes to / comes from the plug-in */
static unsigned char *buf_expect; /* regenerated expectation */

/* First differing offset of two buffers, or -1. */
static long first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
    size_t i;
    if (memcmp(a, b, n) == 0)
        return -1;
    for (i = 0; i < n; i++)
        if (a[i] != b[i])
            return (long)i;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers to build arguments                                                                */
/* ---------------------------------------------------------------------------------------- */

static const char *g_server = "VastData:testcluster";
static const char *g_work;
static char g_mount[4096];

#define DATE "1638486030"
#define POLICY "pol_fs_daily"
#define CLIENT "client1"
#define MASTER "master1"
#define BACKUP_ID CLIENT "_" DATE

static void set_str(char *dst, size_t cap, const char *s)
{
    memset(dst, 0, cap);
    snprintf(dst, cap, "%s", s);
}
#define SET(arr, s) set_str((arr), sizeof(arr), (s))

/* A fixed-size array as a printable string, even when it is not NUL-terminated. */
static const char *arr_str(const char *a, size_t cap)
{
    static char out[4][320];
    static unsigned next;
    char *o = out[next++ % 4];
    size_t n = strnlen(a, cap);
    if (n > sizeof out[0] - 1)
        n = sizeof out[0] - 1;
    memcpy(o, a, n);
    o[n] = 0;
    return o;
}
#define STR(arr) arr_str((arr), sizeof(arr))

static int arr_eq(const char *a, size_t cap, const char *s)
{
    return strnlen(a, cap) < cap && strcmp(a, s) == 0;
}
#define EQ(arr, s) arr_eq((arr), sizeof(arr), (s))

static sts_lsu_t mk_lsu(stsp_server_handle_t srv, const char *name)
{
    sts_lsu_t l;
    memset(&l, 0, sizeof l);
    l.sl_server_handle = srv;
    SET(l.sl_lsu_name.sln_name, name);
    return l;
}

static sts_image_def_t mk_def(const char *basename, const char *date, uint32_t copy)
{
    sts_image_def_t d;
    memset(&d, 0, sizeof d);
    SET(d.img_basename, basename);
    SET(d.img_date, date);
    SET(d.img_policy, POLICY);
    SET(d.img_client, CLIENT);
    SET(d.img_master_server, MASTER);
    d.img_copy_number = copy;
    return d;
}

static sts_cred_t mk_cred(void)
{
    sts_cred_t c;
    memset(&c, 0, sizeof c);
    c.cr_type = STS_CRED_CLEAR;
    SET(c.cr_user, "nbuser");
    SET(c.cr_password, "not-checked-for-nfs");
    return c;
}

static int on_disk(const char *lsu, const char *image)
{
    char path[8192];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", g_mount, lsu, image);
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Image I/O                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * Write bytes [from, to) of the stream `seed` in blocks of `block` bytes. Returns the first
 * failing status (and where) or STS_EOK; `*written` is checked on every call.
 */
static int write_range(stsp_image_handle_t h, uint64_t seed, uint64_t from, uint64_t to,
                       uint32_t block, char *why, size_t why_len)
{
    uint64_t off;
    sts_stat_t st;
    memset(&st, 0, sizeof st);
    for (off = from; off < to;) {
        uint64_t len = to - off < block ? to - off : block, written = 12345;
        int rc;
        fill(seed, off, buf_data, (size_t)len);
        /* NetBackup passes a stat structure; NULL is allowed: use both. */
        rc = P.stspi_write_image(h, (off / block) % 2 ? &st : NULL, buf_data, len, off, &written);
        if (rc != STS_EOK) {
            snprintf(why, why_len, "write of %" PRIu64 " bytes at %" PRIu64 ": %s", len, off,
                     status_name(rc));
            return rc;
        }
        if (written != len) {
            snprintf(why, why_len, "write of %" PRIu64 " bytes at %" PRIu64 " reported %" PRIu64,
                     len, off, written);
            return STS_EPLUGIN;
        }
        off += len;
    }
    return STS_EOK;
}

/* Compare a read result with the stream. */
static int verify_chunk(uint64_t seed, uint64_t off, const unsigned char *got, size_t n,
                        char *why, size_t why_len)
{
    long d;
    fill(seed, off, buf_expect, n);
    d = first_diff(got, buf_expect, n);
    if (d >= 0) {
        snprintf(why, why_len, "byte %" PRIu64 " differs (got 0x%02x, expected 0x%02x)",
                 off + (uint64_t)d, got[d], buf_expect[d]);
        return 0;
    }
    return 1;
}

/* Read the whole image sequentially with buffers of varying sizes. */
static int read_sequential(stsp_image_handle_t h, uint64_t seed, uint64_t size, char *why,
                           size_t why_len)
{
    static const uint64_t sizes[] = {BLOCK, 4096, 1048576 + 17, 512, 65536 + 3, 100003, 1, 2 * BLOCK};
    uint64_t off = 0;
    unsigned i = 0;
    while (off < size) {
        uint64_t want = sizes[i++ % (sizeof sizes / sizeof sizes[0])], nread = 777;
        uint64_t expect_n = size - off < want ? size - off : want;
        int rc = P.stspi_read_image(h, buf_data, want, off, &nread);
        if (rc != STS_EOK) {
            snprintf(why, why_len, "read of %" PRIu64 " at %" PRIu64 ": %s", want, off,
                     status_name(rc));
            return 0;
        }
        if (nread != expect_n) {
            snprintf(why, why_len,
                     "read of %" PRIu64 " at %" PRIu64 " gave %" PRIu64 " bytes, expected %" PRIu64,
                     want, off, nread, expect_n);
            return 0;
        }
        if (!verify_chunk(seed, off, buf_data, (size_t)nread, why, why_len))
            return 0;
        off += nread;
    }
    return 1;
}

/* Reads at random offsets and lengths, some crossing the end. */
static int read_random(stsp_image_handle_t h, uint64_t seed, uint64_t size, int count,
                       char *why, size_t why_len)
{
    int i;
    for (i = 0; i < count; i++) {
        uint64_t off = rnd(size + 1), want = 1 + rnd(300000), nread = 777;
        uint64_t expect_n;
        int rc;
        if (i % 5 == 0 && size > 10) /* near the end, crossing it */
            off = size - 1 - rnd(size < 5000 ? size - 1 : 5000);
        expect_n = size - off < want ? size - off : want;
        rc = P.stspi_read_image(h, buf_data, want, off, &nread);
        if (rc != STS_EOK || nread != expect_n) {
            snprintf(why, why_len,
                     "read of %" PRIu64 " at %" PRIu64 " (size %" PRIu64 "): %s, %" PRIu64
                     " bytes, expected %" PRIu64,
                     want, off, size, status_name(rc), nread, expect_n);
            return 0;
        }
        if (!verify_chunk(seed, off, buf_data, (size_t)nread, why, why_len))
            return 0;
    }
    return 1;
}

/* The metadata blob written with an image: a function of the image's seed. */
#define META_LEN 1000u

static int verify_meta(stsp_image_handle_t h, uint64_t seed, const char *what)
{
    unsigned char got[META_LEN + 64], want[META_LEN];
    uint64_t n1 = 0, n2 = 0, n3 = 99;
    int rc1, rc2, rc3;
    char label[512];
    fill(seed ^ 0x4d455441ULL, 0, want, META_LEN);
    rc1 = P.stspi_read_image_meta(h, got, 512, 0, &n1);
    rc2 = P.stspi_read_image_meta(h, got + 512, 64 + META_LEN, 512, &n2);
    rc3 = P.stspi_read_image_meta(h, got, 16, META_LEN, &n3);
    snprintf(label, sizeof label, "%s: metadata reads back (512 + short read to its end, then 0 at the end)", what);
    return check(rc1 == STS_EOK && rc2 == STS_EOK && rc3 == STS_EOK && n1 == 512 &&
                     n2 == META_LEN - 512 && n3 == 0 && memcmp(got, want, META_LEN) == 0,
                 label, "%s/%s/%s, %" PRIu64 "+%" PRIu64 " bytes then %" PRIu64 ", content %s",
                 status_name(rc1), status_name(rc2), status_name(rc3), n1, n2, n3,
                 memcmp(got, want, META_LEN) == 0 ? "equal" : "differs");
}

/*
 * Restore: open the image for reading, check its properties, read it sequentially and at
 * random offsets, check the end, close. `meta` says whether it carries the metadata blob.
 */
static void verify_image(const sts_lsu_t *lsu, const sts_image_def_t *def, uint64_t seed,
                         uint64_t size, int meta, const char *what)
{
    stsp_image_handle_t h = NULL;
    sts_image_info_t info;
    char label[512], why[512];
    uint64_t nread = 5;
    int rc;

    snprintf(label, sizeof label, "%s: open for reading", what);
    if (!TRY(label, P.stspi_open_image(lsu, def, STS_O_READ, &h)))
        return;

    memset(&info, 0, sizeof info);
    rc = P.stspi_get_image_prop(h, &info);
    snprintf(label, sizeof label, "%s: get_image_prop size %" PRIu64 ", CREATED, not PENDING", what, size);
    check(rc == STS_EOK && info.imo_size == size && (info.imo_flags & STS_II_IMAGE_CREATED) &&
              !(info.imo_flags & STS_II_IMAGE_PENDING) &&
              EQ(info.imo_def.img_basename, STR(def->img_basename)),
          label, "%s, size %" PRIu64 ", flags 0x%x, name '%s'", status_name(rc), info.imo_size,
          info.imo_flags, STR(info.imo_def.img_basename));
    if (meta) {
        snprintf(label, sizeof label, "%s: imo_meta_size is %u", what, META_LEN);
        check(info.imo_meta_size == META_LEN, label, "got %" PRIu64, info.imo_meta_size);
        verify_meta(h, seed, what);
    }

    why[0] = 0;
    snprintf(label, sizeof label, "%s: sequential restore of %" PRIu64 " bytes, varying buffers", what, size);
    check(read_sequential(h, seed, size, why, sizeof why), label, "%s", why);

    snprintf(label, sizeof label, "%s: 40 reads at random offsets", what);
    check(read_random(h, seed, size, 40, why, sizeof why), label, "%s", why);

    rc = P.stspi_read_image(h, buf_data, 4096, size, &nread);
    snprintf(label, sizeof label, "%s: read at offset == size gives 0 bytes and STS_EOK", what);
    check(rc == STS_EOK && nread == 0, label, "%s, %" PRIu64 " bytes", status_name(rc), nread);

    snprintf(label, sizeof label, "%s: close read handle", what);
    TRY(label, P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
}

/* Properties by name: size and flags. */
static int check_prop_byname(const sts_lsu_t *lsu, const sts_image_def_t *def, uint64_t size,
                             uint32_t want_set, uint32_t want_clear, const char *what)
{
    sts_image_info_t info;
    int rc;
    memset(&info, 0, sizeof info);
    rc = P.stspi_get_image_prop_byname(lsu, def, &info);
    return check(rc == STS_EOK && info.imo_size == size && (info.imo_flags & want_set) == want_set &&
                     (info.imo_flags & want_clear) == 0,
                 what, "%s, size %" PRIu64 " (want %" PRIu64 "), flags 0x%x (want set 0x%x, clear 0x%x)",
                 status_name(rc), info.imo_size, size, info.imo_flags, want_set, want_clear);
}

/* ---------------------------------------------------------------------------------------- */
/* The backup                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct image {
    const char *suffix;
    uint64_t size;
    int meta;       /* write the metadata blob */
    int checkpoint; /* written with a checkpoint restart in the middle */
    char name[STS_MAX_IMAGENAME];
    uint64_t seed;
};

/* One backup ID: header, three fragments, true image restore info, image (catalog) file. */
static struct image backup[] = {
    {"HDR", 1636, 0, 0, "", 0},
    {"F1", 3u * 1024 * 1024, 0, 0, "", 0},
    {"F2", 4u * 1024 * 1024 + 12345, 1, 0, "", 0},
    {"F3", 2u * 1024 * 1024 + 777, 0, 1, "", 0},
    {"TIR", 300u * 1024 + 5, 0, 0, "", 0},
    {"IM", 6000, 1, 0, "", 0},
};
#define N_IMAGES (sizeof backup / sizeof backup[0])
#define CHECKPOINT_AT (5u * BLOCK) /* bytes written before the restart */

static stsp_server_handle_t g_srv;
static sts_lsu_t g_lsu1, g_lsu2;

static void discovery(void)
{
    sts_plugin_info_t pi;
    sts_server_info_t si;
    sts_cred_t cred = mk_cred();
    sts_session_def_t sess;
    stsp_lsu_list_handle_t ll = NULL;
    sts_lsu_name_t ln, filter;
    int rc, n = 0, seen1 = 0, seen2 = 0, i;
    char label[512];
    const uint64_t want_srv = STS_SRV_DISK | STS_SRV_COPY_IMAGE | STS_SRV_IMAGE_META | STS_SRV_NFS;

    section("discovery (bpstsinfo)");
    {
        /* Not LSUs: a plain file and a dot directory beside lsu1 and lsu2. */
        char p[8192];
        FILE *f;
        snprintf(p, sizeof p, "%s/notanlsu", g_mount);
        f = fopen(p, "w");
        if (f)
            fclose(f);
        snprintf(p, sizeof p, "%s/.snapshot", g_mount);
        mkdir(p, 0755);
    }
    memset(&pi, 0, sizeof pi);
    rc = P.stspi_get_plugin_info(&pi);
    check(rc == STS_EOK && EQ(pi.pi_prefix, "VastData:") && strnlen(pi.pi_name, sizeof pi.pi_name) > 0 &&
              strnlen(pi.pi_name, sizeof pi.pi_name) < sizeof pi.pi_name,
          "get_plugin_info before init: prefix 'VastData:', a name", "%s, prefix '%s', name '%s'",
          status_name(rc), STR(pi.pi_prefix), STR(pi.pi_name));
    expect("claim before init gives STS_ENOTINIT", STS_ENOTINIT, P.stspi_claim(g_server));

    memset(&pi, 0, sizeof pi);
    rc = P.stspi_init(STSPI_VASTDATA_API_VERSION, &pi);
    check(rc == STS_EOK && EQ(pi.pi_prefix, "VastData:") &&
              pi.pi_operating_version == STSPI_VASTDATA_API_VERSION,
          "init: STS_EOK, info filled (prefix, operating version)", "%s, prefix '%s', version %u",
          status_name(rc), STR(pi.pi_prefix), pi.pi_operating_version);
    printf("      plug-in '%s' %s, label '%s'\n", STR(pi.pi_name), STR(pi.pi_vendor_version), STR(pi.pi_label));
    memset(&pi, 0, sizeof pi);
    rc = P.stspi_get_plugin_info(&pi);
    check(rc == STS_EOK && EQ(pi.pi_prefix, "VastData:"), "get_plugin_info: prefix 'VastData:'",
          "%s, prefix '%s'", status_name(rc), STR(pi.pi_prefix));

    TRY("claim our server name", P.stspi_claim(g_server));
    expect("claim PureDisk:x is not ours", STS_ECLAIM, P.stspi_claim("PureDisk:x"));

    memset(&sess, 0, sizeof sess);
    SET(sess.sd_id, "bpstsinfo pid 4242 job 17");
    rc = P.stspi_open_server(&sess, g_server, &cred, NULL, &g_srv);
    if (!expect("open_server", STS_EOK, rc) || g_srv == NULL) {
        g_srv = NULL;
        return;
    }

    memset(&si, 0, sizeof si);
    rc = P.stspi_get_server_prop(g_srv, &si);
    check(rc == STS_EOK && EQ(si.srv_server, g_server) && (si.srv_flags & want_srv) == want_srv,
          "get_server_prop: name, flags DISK|COPY_IMAGE|IMAGE_META|NFS", "%s, name '%s', flags 0x%" PRIx64,
          status_name(rc), STR(si.srv_server), si.srv_flags);
    printf("      server version '%s'\n", STR(si.srv_version));
    memset(&si, 0, sizeof si);
    rc = P.stspi_get_server_prop_byname(NULL, g_server, &si);
    check(rc == STS_EOK && EQ(si.srv_server, g_server) && (si.srv_flags & want_srv) == want_srv,
          "get_server_prop_byname (no session)", "%s, name '%s', flags 0x%" PRIx64, status_name(rc),
          STR(si.srv_server), si.srv_flags);

    rc = P.stspi_open_lsu_list(g_srv, NULL, &ll);
    if (TRY("open_lsu_list (no filter)", rc)) {
        while (n < 1000) {
            memset(&ln, 0x55, sizeof ln);
            rc = P.stspi_list_lsu(ll, &ln);
            if (rc != STS_EOK)
                break;
            n++;
            printf("      LSU '%s'\n", STR(ln.sln_name));
            if (EQ(ln.sln_name, "lsu1"))
                seen1++;
            if (EQ(ln.sln_name, "lsu2"))
                seen2++;
            {
                sts_lsu_t l = mk_lsu(g_srv, STR(ln.sln_name));
                sts_lsu_info_t li;
                memset(&li, 0, sizeof li);
                rc = P.stspi_get_lsu_prop_byname(&l, &li);
                snprintf(label, sizeof label, "get_lsu_prop_byname '%s': name, server, DISK|NFS, capacity >= used", STR(ln.sln_name));
                check(rc == STS_EOK && EQ(li.lsu_name.sln_name, STR(ln.sln_name)) && EQ(li.lsu_server, g_server) &&
                          (li.lsu_flags & (STS_LSUF_DISK | STS_LSUF_NFS)) == (STS_LSUF_DISK | STS_LSUF_NFS) &&
                          li.lsu_capacity > 0 && li.lsu_capacity >= li.lsu_used && li.lsu_max_transfer > 0,
                      label, "%s, name '%s', server '%s', flags 0x%" PRIx64 ", capacity %" PRIu64 ", used %" PRIu64,
                      status_name(rc), STR(li.lsu_name.sln_name), STR(li.lsu_server), li.lsu_flags,
                      li.lsu_capacity, li.lsu_used);
            }
        }
        expect("list_lsu ends with STS_ENO_MORE_ENTRIES", STS_ENO_MORE_ENTRIES, rc);
        expect("list_lsu after the end: STS_ENO_MORE_ENTRIES again", STS_ENO_MORE_ENTRIES, P.stspi_list_lsu(ll, &ln));
        check(seen1 == 1 && seen2 == 1 && n == 2, "LSU list is exactly lsu1 and lsu2 (not the file notanlsu, not .snapshot)",
              "%d entries, lsu1 seen %d times, lsu2 %d times", n, seen1, seen2);
        TRY("close_lsu_list", P.stspi_close_lsu_list(ll));
    }

    /* A filtered list, as bpstsinfo -lsulist -lsuname does. */
    memset(&filter, 0, sizeof filter);
    SET(filter.sln_name, "lsu2");
    ll = NULL;
    if (TRY("open_lsu_list with filter 'lsu2'", P.stspi_open_lsu_list(g_srv, &filter, &ll))) {
        memset(&ln, 0, sizeof ln);
        rc = P.stspi_list_lsu(ll, &ln);
        i = P.stspi_list_lsu(ll, &ln);
        check(rc == STS_EOK && i == STS_ENO_MORE_ENTRIES && EQ(ln.sln_name, "lsu2"),
              "filtered LSU list holds lsu2 only", "%s then %s, '%s'", status_name(rc),
              status_name(i), STR(ln.sln_name));
        TRY("close filtered lsu list", P.stspi_close_lsu_list(ll));
    }
    {
        stsp_server_handle_t s2 = NULL;
        SET(sess.sd_id, "bptm pid 4243 job 18");
        rc = P.stspi_open_server(&sess, g_server, &cred, "10.0.0.1", &s2);
        check(rc == STS_EOK && s2 != NULL && s2 != g_srv, "open_server again with a session and an interface: a second handle",
              "%s", status_name(rc));
        if (rc == STS_EOK)
            TRY("close the second server handle", P.stspi_close_server(s2));
    }
    g_lsu1 = mk_lsu(g_srv, "lsu1");
    g_lsu2 = mk_lsu(g_srv, "lsu2");
}

/* bptm: write one image completely (or up to `stop` for a checkpoint). */
static void write_image(struct image *im, uint64_t stop, int close_flags, int pending_hint)
{
    sts_image_def_t def = mk_def(im->name, DATE, 1);
    stsp_image_handle_t h = NULL;
    char label[512], why[512] = "";
    int rc;

    snprintf(label, sizeof label, "%s: create_image", im->name);
    if (!TRY(label, P.stspi_create_image(&g_lsu1, &def, pending_hint, &h)))
        return;
    snprintf(label, sizeof label, "%s: exists on storage after create", im->name);
    check(on_disk("lsu1", im->name), label, "no directory %s/lsu1/%s", g_mount, im->name);
    snprintf(label, sizeof label, "%s: listed PENDING and BUSY_WRITE while being written", im->name);
    check_prop_byname(&g_lsu1, &def, 0, STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE, STS_II_IMAGE_CREATED, label);

    if (im->meta) {
        unsigned char meta[META_LEN];
        uint64_t w1 = 0, w2 = 0;
        int rc2;
        fill(im->seed ^ 0x4d455441ULL, 0, meta, META_LEN);
        /* Out of order, in two pieces: the blob is offset-addressed. */
        rc = P.stspi_write_image_meta(h, meta + 600, META_LEN - 600, 600, &w2);
        rc2 = P.stspi_write_image_meta(h, meta, 600, 0, &w1);
        snprintf(label, sizeof label, "%s: write_image_meta (%u bytes in two writes)", im->name, META_LEN);
        check(rc == STS_EOK && rc2 == STS_EOK && w1 == 600 && w2 == META_LEN - 600, label,
              "%s/%s, written %" PRIu64 "/%" PRIu64, status_name(rc), status_name(rc2), w1, w2);
        snprintf(label, sizeof label, "%s (write handle)", im->name);
        verify_meta(h, im->seed, label);
    }

    if (im->size > 2 * BLOCK && !im->checkpoint) {
        /* Half, then flush (a checkpoint without restart), then the rest. */
        uint64_t half = (im->size / 2) / BLOCK * BLOCK;
        sts_image_info_t info;
        rc = write_range(h, im->seed, 0, half, BLOCK, why, sizeof why);
        snprintf(label, sizeof label, "%s: first %" PRIu64 " bytes in 256 KiB writes", im->name, half);
        check(rc == STS_EOK, label, "%s", why);
        snprintf(label, sizeof label, "%s: flush", im->name);
        TRY(label, P.stspi_flush(h));
        snprintf(label, sizeof label, "%s: after flush, committed size is %" PRIu64 " (by name)", im->name, half);
        check_prop_byname(&g_lsu1, &def, half, STS_II_IMAGE_PENDING, STS_II_IMAGE_CREATED, label);
        memset(&info, 0, sizeof info);
        rc = P.stspi_get_image_prop(h, &info);
        snprintf(label, sizeof label, "%s: get_image_prop on the write handle: size %" PRIu64 ", PENDING", im->name, half);
        check(rc == STS_EOK && info.imo_size == half && (info.imo_flags & STS_II_IMAGE_PENDING), label,
              "%s, size %" PRIu64 ", flags 0x%x", status_name(rc), info.imo_size, info.imo_flags);
        rc = write_range(h, im->seed, half, stop, BLOCK, why, sizeof why);
        snprintf(label, sizeof label, "%s: remaining %" PRIu64 " bytes", im->name, stop - half);
        check(rc == STS_EOK, label, "%s", why);
    } else {
        rc = write_range(h, im->seed, 0, stop, BLOCK, why, sizeof why);
        snprintf(label, sizeof label, "%s: %" PRIu64 " bytes in 256 KiB writes", im->name, stop);
        check(rc == STS_EOK, label, "%s", why);
    }

    snprintf(label, sizeof label, "%s: close %s", im->name,
             close_flags == STS_CLOSEF_IH_COMPLETE ? "COMPLETE" : "INCOMPLETE");
    TRY(label, P.stspi_close_image(h, close_flags));
}

static void checkpoint_restart(struct image *im)
{
    sts_image_def_t def = mk_def(im->name, DATE, 1), copy_def;
    stsp_image_handle_t h = NULL;
    stsp_image_list_handle_t il = NULL;
    sts_image_info_t info;
    char label[512], why[512] = "";
    int rc, found = 0;

    section("checkpoint restart (bptm, job resumed)");
    write_image(im, CHECKPOINT_AT, STS_CLOSEF_IH_INCOMPLETE, 1);

    snprintf(label, sizeof label, "%s: after close INCOMPLETE: PENDING, not CREATED, not busy, size %u",
             im->name, CHECKPOINT_AT);
    check_prop_byname(&g_lsu1, &def, CHECKPOINT_AT, STS_II_IMAGE_PENDING,
                      STS_II_IMAGE_CREATED | STS_II_BUSY_WRITE, label);

    if (TRY("open_image_list to find the pending image", P.stspi_open_image_list(&g_lsu1, NULL, &il))) {
        while ((rc = P.stspi_list_image(il, &info)) == STS_EOK)
            if (EQ(info.imo_def.img_basename, im->name)) {
                found++;
                snprintf(label, sizeof label, "%s: listed as PENDING (not CREATED) with size %u", im->name, CHECKPOINT_AT);
                check((info.imo_flags & STS_II_IMAGE_PENDING) && !(info.imo_flags & STS_II_IMAGE_CREATED) &&
                          info.imo_size == CHECKPOINT_AT,
                      label, "flags 0x%x, size %" PRIu64, info.imo_flags, info.imo_size);
            }
        expect("image list ends with STS_ENO_MORE_ENTRIES", STS_ENO_MORE_ENTRIES, rc);
        check(found == 1, "pending image listed once", "listed %d times", found);
        TRY("close_image_list", P.stspi_close_image_list(il));
    }

    copy_def = mk_def("client1_cp_of_pending", "", 2);
    expect("copy_image of a pending image is STS_ESTATE", STS_ESTATE,
           P.stspi_copy_image(&g_lsu2, &copy_def, &g_lsu1, &def, 0));
    check(!on_disk("lsu2", "client1_cp_of_pending"), "failed copy leaves nothing of the target",
          "%s/lsu2/client1_cp_of_pending exists", g_mount);

    snprintf(label, sizeof label, "%s: open STS_O_APPEND", im->name);
    if (!TRY(label, P.stspi_open_image(&g_lsu1, &def, STS_O_APPEND, &h)))
        return;
    memset(&info, 0, sizeof info);
    rc = P.stspi_get_image_prop(h, &info);
    snprintf(label, sizeof label, "%s: reopened handle shows size %u, PENDING", im->name, CHECKPOINT_AT);
    check(rc == STS_EOK && info.imo_size == CHECKPOINT_AT && (info.imo_flags & STS_II_IMAGE_PENDING) &&
              !(info.imo_flags & STS_II_IMAGE_CREATED),
          label, "%s, size %" PRIu64 ", flags 0x%x", status_name(rc), info.imo_size, info.imo_flags);
    rc = write_range(h, im->seed, CHECKPOINT_AT, im->size, BLOCK, why, sizeof why);
    snprintf(label, sizeof label, "%s: continue from offset %u to %" PRIu64, im->name, CHECKPOINT_AT, im->size);
    check(rc == STS_EOK, label, "%s", why);
    snprintf(label, sizeof label, "%s: close COMPLETE after restart", im->name);
    TRY(label, P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
    snprintf(label, sizeof label, "%s: now CREATED, not PENDING, size %" PRIu64, im->name, im->size);
    check_prop_byname(&g_lsu1, &def, im->size, STS_II_IMAGE_CREATED, STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE, label);
    /* Verified byte for byte with the rest of the backup in restore(). */
}

static void do_backup(void)
{
    size_t i;
    sts_lsu_info_t li;
    int rc;
    section("backup (bptm): HDR, F1..F3, TIR, IM of one backup ID");
    for (i = 0; i < N_IMAGES; i++) {
        snprintf(backup[i].name, sizeof backup[i].name, "%s_C1_%s", BACKUP_ID, backup[i].suffix);
        backup[i].seed = name_seed(backup[i].name);
    }
    for (i = 0; i < N_IMAGES; i++) {
        if (backup[i].checkpoint)
            checkpoint_restart(&backup[i]);
        else
            write_image(&backup[i], backup[i].size, STS_CLOSEF_IH_COMPLETE, i + 1 < N_IMAGES);
    }
    memset(&li, 0, sizeof li);
    rc = P.stspi_get_lsu_prop_byname(&g_lsu1, &li);
    check(rc == STS_EOK && li.lsu_images == N_IMAGES, "lsu1 holds the backup's 6 images (lsu_images)",
          "%s, lsu_images %" PRIu64, status_name(rc), li.lsu_images);
}

static void restore(void)
{
    size_t i;
    section("restore (bptm/bpdm): every image, sequential and random reads");
    for (i = 0; i < N_IMAGES; i++) {
        sts_image_def_t def = mk_def(backup[i].name, DATE, 1);
        check_prop_byname(&g_lsu1, &def, backup[i].size, STS_II_IMAGE_CREATED,
                          STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE,
                          backup[i].name);
        verify_image(&g_lsu1, &def, backup[i].seed, backup[i].size, backup[i].meta, backup[i].name);
    }
    {
        /* An empty date matches any; NetBackup sometimes only knows the basename. */
        sts_image_def_t def = mk_def(backup[1].name, "", 0);
        check_prop_byname(&g_lsu1, &def, backup[1].size, STS_II_IMAGE_CREATED, 0,
                          "get_image_prop_byname with an empty date finds the image");
    }
}

/* List `lsu` with `prefix` (NULL: no filter); check each backup image listed as expected. */
static void list_and_check(const char *prefix, const char *must_prefix, size_t want_n)
{
    stsp_image_list_handle_t il = NULL;
    sts_image_def_t filter;
    sts_image_info_t info;
    int seen[N_IMAGES];
    size_t i, n = 0, others = 0;
    int rc;
    char label[512];

    memset(seen, 0, sizeof seen);
    memset(&filter, 0, sizeof filter);
    if (prefix)
        SET(filter.img_basename, prefix);
    snprintf(label, sizeof label, "open_image_list on lsu1, filter %s%s%s", prefix ? "'" : "",
             prefix ? prefix : "none", prefix ? "'" : "");
    if (!TRY(label, P.stspi_open_image_list(&g_lsu1, prefix ? &filter : NULL, &il)))
        return;
    while (n + others < 10000) {
        memset(&info, 0xAA, sizeof info);
        rc = P.stspi_list_image(il, &info);
        if (rc != STS_EOK)
            break;
        for (i = 0; i < N_IMAGES; i++)
            if (EQ(info.imo_def.img_basename, backup[i].name))
                break;
        if (i == N_IMAGES) {
            others++;
            if (prefix && strncmp(STR(info.imo_def.img_basename), prefix, strlen(prefix)) != 0)
                check(0, "listed image matches the filter", "'%s' does not start with '%s'",
                      STR(info.imo_def.img_basename), prefix);
            continue;
        }
        n++;
        seen[i]++;
        snprintf(label, sizeof label, "listed %s: size %" PRIu64 ", CREATED, date/policy/client/copy/server/lsu", backup[i].name, backup[i].size);
        check(info.imo_size == backup[i].size && (info.imo_flags & STS_II_IMAGE_CREATED) &&
                  !(info.imo_flags & STS_II_IMAGE_PENDING) && EQ(info.imo_def.img_date, DATE) &&
                  EQ(info.imo_def.img_policy, POLICY) && EQ(info.imo_def.img_client, CLIENT) &&
                  EQ(info.imo_def.img_master_server, MASTER) && info.imo_def.img_copy_number == 1 &&
                  EQ(info.imo_server, g_server) && EQ(info.imo_lsu.sln_name, "lsu1") &&
                  info.imo_meta_size == (backup[i].meta ? META_LEN : 0),
              label,
              "size %" PRIu64 ", flags 0x%x, date '%s', policy '%s', client '%s', master '%s', copy %u, server '%s', lsu '%s', meta %" PRIu64,
              info.imo_size, info.imo_flags, STR(info.imo_def.img_date), STR(info.imo_def.img_policy),
              STR(info.imo_def.img_client), STR(info.imo_def.img_master_server),
              info.imo_def.img_copy_number, STR(info.imo_server), STR(info.imo_lsu.sln_name),
              info.imo_meta_size);
    }
    expect("image list ends with STS_ENO_MORE_ENTRIES", STS_ENO_MORE_ENTRIES, rc);
    for (i = 0; i < N_IMAGES; i++) {
        int want = (!must_prefix || strncmp(backup[i].name, must_prefix, strlen(must_prefix)) == 0);
        if (seen[i] != want) {
            check(0, "listing finds exactly the images it should", "%s seen %d times, expected %d",
                  backup[i].name, seen[i], want);
        }
    }
    snprintf(label, sizeof label, "listing holds %zu of the backup's images", want_n);
    check(n == want_n, label, "got %zu (and %zu others)", n, others);
    TRY("close_image_list", P.stspi_close_image_list(il));
}

static void listing(void)
{
    section("listing (image list, bpstsinfo -imagelist)");
    list_and_check(NULL, NULL, N_IMAGES);
    list_and_check(BACKUP_ID "_", NULL, N_IMAGES);
    list_and_check(BACKUP_ID "_C1_F", BACKUP_ID "_C1_F", 3);
    list_and_check("nomatch_", "nomatch_", 0);
}

static void copies(void)
{
    const struct image *src = &backup[2]; /* F2: odd size, carries metadata */
    sts_image_def_t from = mk_def(src->name, DATE, 1);
    sts_image_def_t to_other_lsu = mk_def(src->name, "", 2);
    char copy_name[STS_MAX_IMAGENAME];
    sts_image_def_t to_same_lsu;
    sts_image_info_t info;
    int rc;

    section("duplication (copy_image)");
    snprintf(copy_name, sizeof copy_name, "%s_C2_%s", BACKUP_ID, src->suffix);
    to_same_lsu = mk_def(copy_name, DATE, 2);

    TRY("copy_image F2 to lsu2, same name, empty date", P.stspi_copy_image(&g_lsu2, &to_other_lsu, &g_lsu1, &from, 0));
    memset(&info, 0, sizeof info);
    rc = P.stspi_get_image_prop_byname(&g_lsu2, &to_other_lsu, &info);
    check(rc == STS_EOK && info.imo_size == src->size && (info.imo_flags & STS_II_IMAGE_CREATED) &&
              EQ(info.imo_def.img_date, DATE) && EQ(info.imo_lsu.sln_name, "lsu2"),
          "copy on lsu2: size, CREATED, date taken from the source", "%s, size %" PRIu64 ", flags 0x%x, date '%s', lsu '%s'",
          status_name(rc), info.imo_size, info.imo_flags, STR(info.imo_def.img_date), STR(info.imo_lsu.sln_name));
    verify_image(&g_lsu2, &to_other_lsu, src->seed, src->size, 1, "copy on lsu2");

    TRY("copy_image F2 to another name on lsu1 (copy 2)", P.stspi_copy_image(&g_lsu1, &to_same_lsu, &g_lsu1, &from, 0));
    check_prop_byname(&g_lsu1, &to_same_lsu, src->size, STS_II_IMAGE_CREATED, STS_II_IMAGE_PENDING, "copy on lsu1: size, CREATED");
    verify_image(&g_lsu1, &to_same_lsu, src->seed, src->size, 1, "copy on lsu1");
    verify_image(&g_lsu1, &from, src->seed, src->size, 1, "source after the copies");

    expect("copy onto an existing image is STS_EEXIST", STS_EEXIST,
           P.stspi_copy_image(&g_lsu1, &to_same_lsu, &g_lsu1, &from, 0));
    verify_image(&g_lsu1, &to_same_lsu, src->seed, src->size, 1, "existing copy after a refused copy onto it");

    {
        /* Through a second server handle of the same cluster (another bpdm process would
           hold its own): source and target LSU belong to different handles. */
        sts_cred_t cred = mk_cred();
        stsp_server_handle_t s2 = NULL;
        char n3[STS_MAX_IMAGENAME];
        sts_image_def_t to3;
        snprintf(n3, sizeof n3, "%s_C3_%s", BACKUP_ID, src->suffix);
        to3 = mk_def(n3, DATE, 3);
        if (TRY("open a second server handle", P.stspi_open_server(NULL, g_server, &cred, NULL, &s2))) {
            sts_lsu_t l2 = mk_lsu(s2, "lsu2");
            TRY("copy_image F2 from lsu1 (first handle) to lsu2 (second handle)", P.stspi_copy_image(&l2, &to3, &g_lsu1, &from, 0));
            verify_image(&g_lsu2, &to3, src->seed, src->size, 1, "copy across server handles");
            TRY("expire it", P.stspi_delete_image(&l2, &to3));
            TRY("close the second server handle", P.stspi_close_server(s2));
        }
    }
    TRY("expire the lsu2 copy", P.stspi_delete_image(&g_lsu2, &to_other_lsu));
    TRY("expire the lsu1 copy", P.stspi_delete_image(&g_lsu1, &to_same_lsu));
    expect("lsu2 copy is gone", STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu2, &to_other_lsu, &info));
    expect("lsu1 copy is gone", STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu1, &to_same_lsu, &info));
    verify_image(&g_lsu1, &from, src->seed, src->size, 1, "source after its copies expired");
}

/* ---------------------------------------------------------------------------------------- */
/* Optimized synthetics and extent copy                                                      */
/* ---------------------------------------------------------------------------------------- */

/* An Accelerator-style synthetic full: 40 segments of 256 KiB, each either new data (one in
 * twenty) or a range of the previous full included at another offset. */
#define SYN_SEGS 40u
#define SYN_SIZE ((uint64_t)SYN_SEGS * BLOCK)
#define SYN_FULL_SEED 71u
#define SYN_NEW_SEED 72u

static int syn_is_new(unsigned k) { return k % 20 == 7; }
static uint64_t syn_src(unsigned k) { return ((uint64_t)k * BLOCK + 100000) % (SYN_SIZE - BLOCK); }

/* The bytes segment k of the synthetic must hold. */
static void syn_expect(unsigned k, unsigned char *out)
{
    if (syn_is_new(k))
        fill(SYN_NEW_SEED, (uint64_t)k * BLOCK, out, BLOCK);
    else
        fill(SYN_FULL_SEED, syn_src(k), out, BLOCK);
}

/* Read image `name` of `lsu` segment by segment and compare with `expect(k, buf)`. */
static void verify_segments(const sts_lsu_t *lsu, const char *name, void (*expect_seg)(unsigned, unsigned char *),
                            const char *label)
{
    sts_image_def_t def = mk_def(name, DATE, 1);
    stsp_image_handle_t h = NULL;
    unsigned k;
    char why[512] = "";
    int ok = 1;
    if (!TRY(label, P.stspi_open_image(lsu, &def, STS_O_READ, &h)))
        return;
    for (k = 0; k < SYN_SEGS && ok; k++) {
        uint64_t n = 0;
        int rc = P.stspi_read_image(h, buf_data, BLOCK, (uint64_t)k * BLOCK, &n);
        expect_seg(k, buf_expect);
        if (rc != STS_EOK || n != BLOCK) {
            snprintf(why, sizeof why, "segment %u: %s, %" PRIu64 " bytes", k, status_name(rc), n);
            ok = 0;
        } else if (memcmp(buf_data, buf_expect, BLOCK) != 0) {
            snprintf(why, sizeof why, "segment %u: byte %ld differs", k, first_diff(buf_data, buf_expect, BLOCK));
            ok = 0;
        }
    }
    check(ok, label, "%s", why);
    P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE);
}

static void full_segment(unsigned k, unsigned char *out) { fill(SYN_FULL_SEED, (uint64_t)k * BLOCK, out, BLOCK); }

/* Bytes of the piece files of an image directory (data and block tables). */
static uint64_t piece_bytes(const char *lsu, const char *image)
{
    char path[8192];
    DIR *d;
    struct dirent *e;
    uint64_t total = 0;
    snprintf(path, sizeof path, "%s/%s/%s", g_mount, lsu, image);
    d = opendir(path);
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        struct stat st;
        char f[8192 + 256];
        if (n < 6 || strcmp(e->d_name + n - 6, ".piece") != 0)
            continue;
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        if (stat(f, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static void synthetics(void)
{
    const char *full = "acc_1700000000_C1_F1", *syn = "acc_1700086400_C1_F1", *dup = "acc_1700000000_C2_F1";
    sts_image_def_t full_def = mk_def(full, DATE, 1), syn_def = mk_def(syn, DATE, 1), dup_def = mk_def(dup, DATE, 2);
    sts_image_def_t missing = mk_def("acc_none_C1_F1", DATE, 1), pend_def = mk_def("acc_pending_C1_F1", DATE, 1);
    sts_server_info_t si;
    sts_lsu_info_t li;
    stsp_image_handle_t h = NULL, src = NULL, pend = NULL, tgt_img = NULL;
    stsp_server_handle_t tgt = NULL;
    char why[512] = "";
    unsigned k;
    uint64_t own;
    int rc;

    section("optimized synthetics and extent copy (bptm include, bpdm copy_extent)");
    memset(&si, 0, sizeof si);
    rc = P.stspi_get_server_prop(g_srv, &si);
    check(rc == STS_EOK && (si.srv_flags & STS_SRV_OPTIMIZED_IMAGE) && (si.srv_flags & STS_SRV_COPY_EXTENT),
          "the server advertises STS_SRV_OPTIMIZED_IMAGE and STS_SRV_COPY_EXTENT", "%s, flags %#" PRIx64,
          status_name(rc), si.srv_flags);
    memset(&li, 0, sizeof li);
    rc = P.stspi_get_lsu_prop_byname(&g_lsu1, &li);
    check(rc == STS_EOK && (li.lsu_flags & STS_LSUF_OPTIMIZED_IMAGE) && (li.lsu_flags & STS_LSUF_COPY_EXTENT),
          "lsu1 advertises STS_LSUF_OPTIMIZED_IMAGE and STS_LSUF_COPY_EXTENT", "%s, flags %#" PRIx64,
          status_name(rc), li.lsu_flags);

    /* The full. */
    if (!TRY("create the full", P.stspi_create_image(&g_lsu1, &full_def, 0, &h)))
        return;
    rc = write_range(h, SYN_FULL_SEED, 0, SYN_SIZE, BLOCK, why, sizeof why);
    check(rc == STS_EOK, "write the full", "%s", why);
    TRY("close the full COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
    TRY("create a pending image", P.stspi_create_image(&g_lsu1, &pend_def, 0, &pend));

    /* The synthetic full: 95 % included, 5 % new, in NetBackup's order. */
    if (!TRY("create the synthetic full", P.stspi_create_image(&g_lsu1, &syn_def, 0, &h)))
        return;
    for (k = 0, rc = STS_EOK; k < SYN_SEGS && rc == STS_EOK; k++) {
        if (syn_is_new(k)) {
            rc = write_range(h, SYN_NEW_SEED, (uint64_t)k * BLOCK, (uint64_t)(k + 1) * BLOCK, BLOCK, why, sizeof why);
        } else {
            rc = P.stspi_include_in_image(h, &full_def, syn_src(k), BLOCK, (uint64_t)k * BLOCK);
            if (rc != STS_EOK)
                snprintf(why, sizeof why, "include of segment %u: %s", k, status_name(rc));
        }
    }
    check(rc == STS_EOK, "write 5 % and include 95 % of the full", "%s", why);
    row("include from a pending image", "stspi_include_in_image(h, &pending, ...)", STS_ESTATE,
        P.stspi_include_in_image(h, &pend_def, 0, BLOCK, SYN_SIZE));
    row("include from a missing image", "stspi_include_in_image(h, &missing, ...)", STS_ENOENT,
        P.stspi_include_in_image(h, &missing, 0, BLOCK, SYN_SIZE));
    row("include past the source's end", "stspi_include_in_image(h, &full, size - 10, 20, ...)", STS_EINVAL,
        P.stspi_include_in_image(h, &full_def, SYN_SIZE - 10, 20, SYN_SIZE));
    row("include of zero bytes", "stspi_include_in_image(h, &full, 0, 0, ...)", STS_EINVAL,
        P.stspi_include_in_image(h, &full_def, 0, 0, SYN_SIZE));
    row("include with a NULL source", "stspi_include_in_image(h, NULL, ...)", STS_EINVAL,
        P.stspi_include_in_image(h, NULL, 0, BLOCK, SYN_SIZE));
    row("include into a closed handle", "stspi_include_in_image(closed, ...)", STS_EHANDLE,
        P.stspi_include_in_image((stsp_image_handle_t)0x1234, &full_def, 0, BLOCK, 0));
    TRY("close the synthetic COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
    TRY("close the pending image COMPLETE", P.stspi_close_image(pend, STS_CLOSEF_IH_COMPLETE));
    verify_segments(&g_lsu1, syn, syn_expect, "restore the synthetic: every byte as included or written");
    own = piece_bytes("lsu1", syn);
    check(own > 0 && own * 100 <= SYN_SIZE * 6, "the synthetic stored at most 6 % of its bytes",
          "%" PRIu64 " of %" PRIu64 " bytes", own, SYN_SIZE);

    /* Extent-based optimized duplication of the full into lsu2, in 256 KiB units. */
    if (TRY("open_target_server (the same server)", P.stspi_open_target_server(g_srv, g_server, NULL, &tgt))) {
        sts_lsu_t tl = mk_lsu(tgt, "lsu2");
        if (TRY("create the duplicate on lsu2 through the target", P.stspi_create_image(&tl, &dup_def, 0, &tgt_img)) &&
            TRY("open the full for reading", P.stspi_open_image(&g_lsu1, &full_def, STS_O_READ, &src))) {
            for (k = 0, rc = STS_EOK; k < SYN_SEGS && rc == STS_EOK; k++)
                rc = P.stspi_copy_extent(tgt_img, src, (uint64_t)k * BLOCK, BLOCK, (uint64_t)k * BLOCK);
            check(rc == STS_EOK, "copy_extent every 256 KiB of the full", "stopped at %u: %s", k, status_name(rc));
            row("copy_extent from a handle to itself", "stspi_copy_extent(h, h, ...)", STS_EINVAL,
                P.stspi_copy_extent(tgt_img, tgt_img, 0, BLOCK, 0));
            row("copy_extent with one forged handle twice", "stspi_copy_extent(forged, forged, ...)", STS_EHANDLE,
                P.stspi_copy_extent((stsp_image_handle_t)(void *)0xdead0, (stsp_image_handle_t)(void *)0xdead0, 0, BLOCK, 0));
            row("copy_extent into a read handle", "stspi_copy_extent(read, write, ...)", STS_ESTATE,
                P.stspi_copy_extent(src, tgt_img, 0, BLOCK, 0));
            row("copy_extent past the source's end", "stspi_copy_extent(..., size, 1, ...)", STS_EINVAL,
                P.stspi_copy_extent(tgt_img, src, SYN_SIZE, 1, 0));
            TRY("close the source", P.stspi_close_image(src, STS_CLOSEF_IH_COMPLETE));
            TRY("close the duplicate COMPLETE", P.stspi_close_image(tgt_img, STS_CLOSEF_IH_COMPLETE));
            verify_segments(&g_lsu2, dup, full_segment, "the duplicate on lsu2 reads as the full");
        }
        row("close_server of a target handle", "stspi_close_server(target)", STS_EHANDLE,
            P.stspi_close_server(tgt));
        row("close_target_server of a server handle", "stspi_close_target_server(server)", STS_EHANDLE,
            P.stspi_close_target_server(g_srv));
        TRY("close_target_server", P.stspi_close_target_server(tgt));
    }

    /* The full expires first: the synthetic and the duplicate stay whole. */
    TRY("expire the full", P.stspi_delete_image(&g_lsu1, &full_def));
    expect("the full is gone", STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu1, &full_def, &(sts_image_info_t){0}));
    verify_segments(&g_lsu1, syn, syn_expect, "the synthetic after its full expired");
    verify_segments(&g_lsu2, dup, full_segment, "the duplicate after the full expired");
    TRY("expire the synthetic", P.stspi_delete_image(&g_lsu1, &syn_def));
    TRY("expire the duplicate", P.stspi_delete_image(&g_lsu2, &dup_def));
    TRY("expire the pending image", P.stspi_delete_image(&g_lsu1, &pend_def));
    check(!on_disk("lsu1", full) && !on_disk("lsu1", syn) && !on_disk("lsu2", dup) && !on_disk("lsu1", "acc_pending_C1_F1"),
          "nothing of the full, the synthetic or the duplicate is left on storage", "%s/lsu1 or lsu2 still holds some",
          g_mount);
}

static void expiry(void)
{
    size_t i;
    sts_image_info_t info;
    sts_lsu_info_t li;
    stsp_image_list_handle_t il = NULL;
    char label[512];
    int rc;

    section("expiry (nbdelete)");
    for (i = 0; i < N_IMAGES; i++) {
        sts_image_def_t def = mk_def(backup[i].name, DATE, 1);
        snprintf(label, sizeof label, "delete %s", backup[i].name);
        TRY(label, P.stspi_delete_image(&g_lsu1, &def));
        snprintf(label, sizeof label, "%s is gone: get_image_prop_byname gives STS_ENOENT", backup[i].name);
        expect(label, STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu1, &def, &info));
        snprintf(label, sizeof label, "%s cannot be opened: STS_ENOENT", backup[i].name);
        {
            stsp_image_handle_t h = NULL;
            rc = P.stspi_open_image(&g_lsu1, &def, STS_O_READ, &h);
            expect(label, STS_ENOENT, rc);
            if (rc == STS_EOK)
                P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE);
        }
        snprintf(label, sizeof label, "%s: nothing left on storage", backup[i].name);
        check(!on_disk("lsu1", backup[i].name), label, "%s/lsu1/%s still exists", g_mount, backup[i].name);
        snprintf(label, sizeof label, "delete %s again gives STS_EOK", backup[i].name);
        TRY(label, P.stspi_delete_image(&g_lsu1, &def));
    }
    {
        /* A backup ID re-run after its images expired reuses the names. */
        sts_image_def_t def = mk_def(backup[0].name, DATE, 1);
        stsp_image_handle_t h = NULL;
        char why[512] = "";
        if (TRY("create an expired name again", P.stspi_create_image(&g_lsu1, &def, 0, &h))) {
            rc = write_range(h, backup[0].seed, 0, backup[0].size, BLOCK, why, sizeof why);
            check(rc == STS_EOK, "write it", "%s", why);
            TRY("close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
            verify_image(&g_lsu1, &def, backup[0].seed, backup[0].size, 0, "re-created image");
            TRY("delete it", P.stspi_delete_image(&g_lsu1, &def));
        }
    }
    if (TRY("open_image_list after expiry", P.stspi_open_image_list(&g_lsu1, NULL, &il))) {
        expect("lsu1 lists no image", STS_ENO_MORE_ENTRIES, P.stspi_list_image(il, &info));
        TRY("close_image_list", P.stspi_close_image_list(il));
    }
    memset(&li, 0, sizeof li);
    rc = P.stspi_get_lsu_prop_byname(&g_lsu1, &li);
    check(rc == STS_EOK && li.lsu_images == 0, "lsu1 holds 0 images (lsu_images)", "%s, lsu_images %" PRIu64,
          status_name(rc), li.lsu_images);
}

/* ---------------------------------------------------------------------------------------- */
/* Bad inputs                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Handles a row may hand out when it wrongly succeeds: closed after every row. */
static stsp_image_handle_t stray_img;
static stsp_image_list_handle_t stray_il;
static stsp_lsu_list_handle_t stray_ll;
static stsp_server_handle_t stray_srv;

static void reap(void)
{
    if (stray_img) {
        printf("      (closing the image handle the row handed out)\n");
        P.stspi_close_image(stray_img, STS_CLOSEF_IH_INCOMPLETE);
    }
    if (stray_il)
        P.stspi_close_image_list(stray_il);
    if (stray_ll)
        P.stspi_close_lsu_list(stray_ll);
    if (stray_srv)
        P.stspi_close_server(stray_srv);
    stray_img = NULL;
    stray_il = NULL;
    stray_ll = NULL;
    stray_srv = NULL;
}

#define ROW(desc, expected, call)                                                              \
    do {                                                                                       \
        row((desc), #call, (expected), (call));                                                \
        reap();                                                                                \
    } while (0)

/* A row whose out-parameter must be reset on failure (`*written`/`*nread` = 0). */
#define ROW_COUNT(desc, expected, var, call)                                                   \
    do {                                                                                       \
        var = 4242;                                                                            \
        if (row((desc), #call, (expected), (call)))                                            \
            check(var == 0, "  ... and the byte count is set to 0", #var " is %" PRIu64, var); \
    } while (0)

static sts_image_def_t def_raw(const char *bytes, size_t n)
{
    sts_image_def_t d = mk_def("", DATE, 1);
    memcpy(d.img_basename, bytes, n < sizeof d.img_basename ? n : sizeof d.img_basename);
    return d;
}

static void bad_inputs(void)
{
    const char *cname = "badinput_complete", *pname = "badinput_pending";
    sts_image_def_t cdef = mk_def(cname, DATE, 1), pdef = mk_def(pname, DATE, 1);
    sts_image_def_t missing = mk_def("badinput_missing", DATE, 1);
    sts_image_def_t wrongdate = mk_def(cname, "1111111111", 1);
    sts_image_def_t d, d2;
    sts_lsu_t lsu_x = mk_lsu(g_srv, "nosuchlsu"), lsu_dotdot = mk_lsu(g_srv, ".."),
              lsu_slash = mk_lsu(g_srv, "lsu1/x"), lsu_empty = mk_lsu(g_srv, ""),
              lsu_nullsrv = mk_lsu(NULL, "lsu1"), lsu_forged = mk_lsu((stsp_server_handle_t)(void *)0x1234, "lsu1"),
              lsu_unterm, lsu_closed;
    sts_lsu_name_t filter_unterm;
    sts_cred_t cred = mk_cred();
    sts_plugin_info_t pi;
    sts_server_info_t si;
    sts_lsu_info_t li;
    sts_lsu_name_t ln;
    sts_image_info_t ii;
    stsp_server_handle_t srv2 = NULL, closed_srv = NULL;
    stsp_image_handle_t rh = NULL, wh = NULL, closed_img = NULL, h = NULL;
    stsp_lsu_list_handle_t ll = NULL, closed_ll = NULL;
    stsp_image_list_handle_t il = NULL, closed_il = NULL;
    /* Forged handles: 0x1234 as the brief suggests; 0x1230 and 0xdead0 can never be valid. */
    void *forged = (void *)0x1234, *forged0 = (void *)0x1230, *forged_dead = (void *)0xdead0;
    unsigned char buf[8192], meta[100];
    uint64_t cnt = 0;
    char name[400];
    int rc;

    section("bad inputs (each row: description, expected, got)");

    /* --- Setup: a complete image, a pending one open for writing, lists, closed handles. */
    {
        int ok = 1;
        ok &= TRY("setup: create badinput_complete", P.stspi_create_image(&g_lsu1, &cdef, 0, &h));
        fill(name_seed(cname), 0, buf, 4096);
        fill(7, 0, meta, sizeof meta);
        ok &= TRY("setup: write 4096 bytes", P.stspi_write_image(h, NULL, buf, 4096, 0, &cnt));
        ok &= TRY("setup: write 100 bytes of metadata", P.stspi_write_image_meta(h, meta, sizeof meta, 0, &cnt));
        ok &= TRY("setup: close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
        ok &= TRY("setup: open badinput_complete for reading", P.stspi_open_image(&g_lsu1, &cdef, STS_O_READ, &rh));
        ok &= TRY("setup: create badinput_pending (open for writing)", P.stspi_create_image(&g_lsu1, &pdef, 0, &wh));
        fill(name_seed(pname), 0, buf, 8192);
        ok &= TRY("setup: write 8192 bytes to it", P.stspi_write_image(wh, NULL, buf, 8192, 0, &cnt));
        ok &= TRY("setup: open an LSU list", P.stspi_open_lsu_list(g_srv, NULL, &ll));
        ok &= TRY("setup: open an image list", P.stspi_open_image_list(&g_lsu1, NULL, &il));
        ok &= TRY("setup: open and close an image (closed handle)", P.stspi_open_image(&g_lsu1, &cdef, STS_O_READ, &closed_img));
        ok &= TRY("setup: ...", P.stspi_close_image(closed_img, STS_CLOSEF_IH_COMPLETE));
        ok &= TRY("setup: open and close an LSU list", P.stspi_open_lsu_list(g_srv, NULL, &closed_ll));
        ok &= TRY("setup: ...", P.stspi_close_lsu_list(closed_ll));
        ok &= TRY("setup: open and close an image list", P.stspi_open_image_list(&g_lsu1, NULL, &closed_il));
        ok &= TRY("setup: ...", P.stspi_close_image_list(closed_il));
        ok &= TRY("setup: open and close a second server handle", P.stspi_open_server(NULL, g_server, &cred, NULL, &closed_srv));
        ok &= TRY("setup: ...", P.stspi_close_server(closed_srv));
        if (!ok) {
            check(0, "bad-input setup", "skipping the table: setup failed");
            return;
        }
    }
    lsu_closed = mk_lsu(closed_srv, "lsu1");
    lsu_unterm = mk_lsu(g_srv, "lsu1");
    memset(lsu_unterm.sl_lsu_name.sln_name, 'l', sizeof lsu_unterm.sl_lsu_name.sln_name);
    memset(&filter_unterm, 'l', sizeof filter_unterm);

    /* --- Plug-in and server level */
    ROW("init with an unsupported API version", STS_EVERSION, P.stspi_init(STSPI_VASTDATA_API_VERSION + 1, &pi));
    ROW("get_plugin_info: NULL info", STS_EINVAL, P.stspi_get_plugin_info(NULL));
    ROW("claim: NULL name", STS_EINVAL, P.stspi_claim(NULL));
    ROW("claim: PureDisk:x is not ours", STS_ECLAIM, P.stspi_claim("PureDisk:x"));
    ROW("claim: lower-case prefix vastdata:x is not ours", STS_ECLAIM, P.stspi_claim("vastdata:x"));
    ROW("claim: empty name", STS_ECLAIM, P.stspi_claim(""));
    ROW("claim: empty cluster part 'VastData:'", STS_EINVAL, P.stspi_claim("VastData:"));
    ROW("claim: cluster part with '/'", STS_EINVAL, P.stspi_claim("VastData:a/b"));
    ROW("claim: cluster part with a space", STS_EINVAL, P.stspi_claim("VastData:a b"));
    ROW("claim: non-UTF-8 name", STS_EINVAL, P.stspi_claim("VastData:\xff\xfe"));
    ROW("claim: cluster part with a newline", STS_EINVAL, P.stspi_claim("VastData:a\nb"));
    ROW("open_server: NULL server name", STS_EINVAL, P.stspi_open_server(NULL, NULL, &cred, NULL, &stray_srv));
    ROW("open_server: NULL handle out-pointer", STS_EINVAL, P.stspi_open_server(NULL, g_server, &cred, NULL, NULL));
    ROW("open_server: NULL credentials", STS_EINVAL, P.stspi_open_server(NULL, g_server, NULL, NULL, &stray_srv));
    {
        sts_cred_t bad_cred = mk_cred();
        sts_session_def_t bad_sess;
        memset(bad_cred.cr_user, 'u', sizeof bad_cred.cr_user);
        memset(&bad_sess, 's', sizeof bad_sess);
        ROW("open_server: credential user not NUL-terminated", STS_EINVAL, P.stspi_open_server(NULL, g_server, &bad_cred, NULL, &stray_srv));
        SET(bad_sess.sd_id, "bptm pid 1\nforged line");
        ROW("open_server: session id with a newline is only logged", STS_EOK, P.stspi_open_server(&bad_sess, g_server, &cred, NULL, &stray_srv));
        memset(&bad_sess, 's', sizeof bad_sess);
        ROW("open_server: session id not NUL-terminated", STS_EINVAL, P.stspi_open_server(&bad_sess, g_server, &cred, NULL, &stray_srv));
    }
    memset(name, 'c', sizeof name);
    memcpy(name, "VastData:", 9);
    name[9 + 241] = 0;
    ROW("claim: 241-byte cluster part (over the limit)", STS_EINVAL, P.stspi_claim(name));
    ROW("open_server: storage server not ours (PureDisk:x)", STS_ECLAIM, P.stspi_open_server(NULL, "PureDisk:x", &cred, NULL, &stray_srv));
    ROW("open_server: ours but not configured (VastData:nosuchcluster)", STS_ECONFIG, P.stspi_open_server(NULL, "VastData:nosuchcluster", &cred, NULL, &stray_srv));
    ROW("get_server_prop_byname: NULL name", STS_EINVAL, P.stspi_get_server_prop_byname(NULL, NULL, &si));
    ROW("get_server_prop_byname: NULL info", STS_EINVAL, P.stspi_get_server_prop_byname(NULL, g_server, NULL));
    ROW("get_server_prop_byname: not ours (PureDisk:x)", STS_ECLAIM, P.stspi_get_server_prop_byname(NULL, "PureDisk:x", &si));
    ROW("get_server_prop_byname: not configured", STS_ECONFIG, P.stspi_get_server_prop_byname(NULL, "VastData:nosuchcluster", &si));
    ROW("get_server_prop: NULL server handle", STS_EHANDLE, P.stspi_get_server_prop(NULL, &si));
    ROW("get_server_prop: NULL info", STS_EINVAL, P.stspi_get_server_prop(g_srv, NULL));
    ROW("get_server_prop: forged handle 0x1234", STS_EHANDLE, P.stspi_get_server_prop((stsp_server_handle_t)forged, &si));
    ROW("get_server_prop: forged handle 0xdead0", STS_EHANDLE, P.stspi_get_server_prop((stsp_server_handle_t)forged_dead, &si));
    ROW("get_server_prop: closed server handle", STS_EHANDLE, P.stspi_get_server_prop(closed_srv, &si));
    ROW("get_server_prop: image handle passed as server handle", STS_EHANDLE, P.stspi_get_server_prop((stsp_server_handle_t)(void *)rh, &si));
    ROW("close_server: NULL handle", STS_EHANDLE, P.stspi_close_server(NULL));
    ROW("close_server: forged handle", STS_EHANDLE, P.stspi_close_server((stsp_server_handle_t)forged));
    ROW("close_server: already closed (double close)", STS_EHANDLE, P.stspi_close_server(closed_srv));
    ROW("close_server: LSU list handle passed as server handle", STS_EHANDLE, P.stspi_close_server((stsp_server_handle_t)(void *)ll));

    /* --- LSUs */
    ROW("open_lsu_list: NULL list out-pointer", STS_EINVAL, P.stspi_open_lsu_list(g_srv, NULL, NULL));
    ROW("open_lsu_list: forged server handle", STS_EHANDLE, P.stspi_open_lsu_list((stsp_server_handle_t)forged, NULL, &stray_ll));
    ROW("open_lsu_list: closed server handle", STS_EHANDLE, P.stspi_open_lsu_list(closed_srv, NULL, &stray_ll));
    ROW("open_lsu_list: filter not NUL-terminated", STS_EINVAL, P.stspi_open_lsu_list(g_srv, &filter_unterm, &stray_ll));
    ROW("list_lsu: NULL name", STS_EINVAL, P.stspi_list_lsu(ll, NULL));
    ROW("list_lsu: NULL list handle", STS_EHANDLE, P.stspi_list_lsu(NULL, &ln));
    ROW("list_lsu: forged handle 0x1230", STS_EHANDLE, P.stspi_list_lsu((stsp_lsu_list_handle_t)forged0, &ln));
    ROW("list_lsu: closed list handle", STS_EHANDLE, P.stspi_list_lsu(closed_ll, &ln));
    ROW("list_lsu: image list handle passed as LSU list", STS_EHANDLE, P.stspi_list_lsu((stsp_lsu_list_handle_t)(void *)il, &ln));
    ROW("close_lsu_list: image list handle (wrong type)", STS_EHANDLE, P.stspi_close_lsu_list((stsp_lsu_list_handle_t)(void *)il));
    ROW("close_lsu_list: already closed (double close)", STS_EHANDLE, P.stspi_close_lsu_list(closed_ll));
    ROW("get_lsu_prop_byname: NULL lsu", STS_EINVAL, P.stspi_get_lsu_prop_byname(NULL, &li));
    ROW("get_lsu_prop_byname: NULL info", STS_EINVAL, P.stspi_get_lsu_prop_byname(&g_lsu1, NULL));
    ROW("get_lsu_prop_byname: unknown LSU", STS_ENOENT, P.stspi_get_lsu_prop_byname(&lsu_x, &li));
    {
        sts_lsu_t lsu_file = mk_lsu(g_srv, "notanlsu");
        ROW("get_lsu_prop_byname: a plain file under the mount is no LSU", STS_ENOENT, P.stspi_get_lsu_prop_byname(&lsu_file, &li));
    }
    ROW("get_lsu_prop_byname: LSU '..'", STS_EINVAL, P.stspi_get_lsu_prop_byname(&lsu_dotdot, &li));
    ROW("get_lsu_prop_byname: LSU 'lsu1/x'", STS_EINVAL, P.stspi_get_lsu_prop_byname(&lsu_slash, &li));
    ROW("get_lsu_prop_byname: empty LSU name", STS_EINVAL, P.stspi_get_lsu_prop_byname(&lsu_empty, &li));
    ROW("get_lsu_prop_byname: LSU name not NUL-terminated", STS_EINVAL, P.stspi_get_lsu_prop_byname(&lsu_unterm, &li));
    ROW("get_lsu_prop_byname: NULL server handle in sts_lsu_t", STS_EHANDLE, P.stspi_get_lsu_prop_byname(&lsu_nullsrv, &li));
    ROW("get_lsu_prop_byname: forged server handle in sts_lsu_t", STS_EHANDLE, P.stspi_get_lsu_prop_byname(&lsu_forged, &li));
    ROW("get_lsu_prop_byname: closed server handle in sts_lsu_t", STS_EHANDLE, P.stspi_get_lsu_prop_byname(&lsu_closed, &li));

    /* --- Image names (create_image on lsu1) */
    ROW("create_image: NULL lsu", STS_EINVAL, P.stspi_create_image(NULL, &missing, 0, &stray_img));
    ROW("create_image: NULL image definition", STS_EINVAL, P.stspi_create_image(&g_lsu1, NULL, 0, &stray_img));
    ROW("create_image: NULL handle out-pointer", STS_EINVAL, P.stspi_create_image(&g_lsu1, &missing, 0, NULL));
    d = mk_def("client1_1/2_C1_F1", DATE, 1);
    ROW("create_image: name with '/'", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("..", DATE, 1);
    ROW("create_image: name '..'", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("../lsu2/escape", DATE, 1);
    ROW("create_image: name '../lsu2/escape'", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def(".", DATE, 1);
    ROW("create_image: name '.'", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("", DATE, 1);
    ROW("create_image: empty name", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("a\\b", DATE, 1);
    ROW("create_image: name with a backslash", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("a\nb", DATE, 1);
    ROW("create_image: name with a newline", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    memset(name, 'a', sizeof name);
    d = def_raw(name, STS_MAX_IMAGENAME);
    ROW("create_image: 256-byte name, not NUL-terminated in its array", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = def_raw(name, STS_MAX_IMAGENAME - 1);
    ROW("create_image: 255-byte name (over the 240-byte limit)", STS_E2BIG, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = def_raw("client1_\xff\xfe_C1_F1", 16);
    ROW("create_image: name with non-UTF-8 bytes", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("client1_\xc3\xa9_C1_F1", DATE, 1);
    ROW("create_image: name with non-ASCII UTF-8 ('\xc3\xa9')", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("badinput_x", DATE, 1);
    memset(d.img_date, '1', sizeof d.img_date);
    ROW("create_image: date not NUL-terminated", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    d = mk_def("badinput_x", DATE, 1);
    memset(d.img_policy, 'p', sizeof d.img_policy);
    ROW("create_image: policy not NUL-terminated", STS_EINVAL, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    ROW("create_image: unknown LSU", STS_ENOENT, P.stspi_create_image(&lsu_x, &missing, 0, &stray_img));
    ROW("create_image: LSU '..'", STS_EINVAL, P.stspi_create_image(&lsu_dotdot, &missing, 0, &stray_img));
    ROW("create_image: closed server handle in sts_lsu_t", STS_EHANDLE, P.stspi_create_image(&lsu_closed, &missing, 0, &stray_img));
    ROW("create_image: forged server handle in sts_lsu_t", STS_EHANDLE, P.stspi_create_image(&lsu_forged, &missing, 0, &stray_img));
    ROW("create_image: image exists (complete)", STS_EEXIST, P.stspi_create_image(&g_lsu1, &cdef, 0, &stray_img));
    ROW("create_image: image exists (pending, open for writing)", STS_EEXIST, P.stspi_create_image(&g_lsu1, &pdef, 0, &stray_img));
    memset(name, 'a', sizeof name);
    d = def_raw(name, 240);
    ROW("create_image: 240-byte name (the limit) is accepted", STS_EOK, P.stspi_create_image(&g_lsu1, &d, 0, &stray_img));
    ROW("delete_image: the 240-byte name", STS_EOK, P.stspi_delete_image(&g_lsu1, &d));
    check(!on_disk("lsu2", "escape") && !on_disk("lsu1", "badinput_x"), "refused names left nothing on storage",
          "found %s/lsu2/escape or %s/lsu1/badinput_x", g_mount, g_mount);

    /* --- open_image */
    ROW("open_image: NULL lsu", STS_EINVAL, P.stspi_open_image(NULL, &cdef, STS_O_READ, &stray_img));
    ROW("open_image: NULL image definition", STS_EINVAL, P.stspi_open_image(&g_lsu1, NULL, STS_O_READ, &stray_img));
    ROW("open_image: NULL handle out-pointer", STS_EINVAL, P.stspi_open_image(&g_lsu1, &cdef, STS_O_READ, NULL));
    ROW("open_image: bad open mode 0", STS_EINVAL, P.stspi_open_image(&g_lsu1, &cdef, 0, &stray_img));
    ROW("open_image: bad open mode 3 (READ|APPEND)", STS_EINVAL, P.stspi_open_image(&g_lsu1, &cdef, STS_O_READ | STS_O_APPEND, &stray_img));
    ROW("open_image: bad open mode -1", STS_EINVAL, P.stspi_open_image(&g_lsu1, &cdef, -1, &stray_img));
    ROW("open_image: missing image", STS_ENOENT, P.stspi_open_image(&g_lsu1, &missing, STS_O_READ, &stray_img));
    ROW("open_image: existing name, other date", STS_ENOENT, P.stspi_open_image(&g_lsu1, &wrongdate, STS_O_READ, &stray_img));
    ROW("open_image: unknown LSU", STS_ENOENT, P.stspi_open_image(&lsu_x, &cdef, STS_O_READ, &stray_img));
    d = mk_def("../lsu1/badinput_complete", DATE, 1);
    ROW("open_image: name '../lsu1/badinput_complete'", STS_EINVAL, P.stspi_open_image(&g_lsu1, &d, STS_O_READ, &stray_img));
    ROW("open_image: STS_O_APPEND of a complete image", STS_ESTATE, P.stspi_open_image(&g_lsu1, &cdef, STS_O_APPEND, &stray_img));
    ROW("open_image: STS_O_APPEND of a missing image", STS_ENOENT, P.stspi_open_image(&g_lsu1, &missing, STS_O_APPEND, &stray_img));

    /* --- write / read / flush */
    ROW_COUNT("write_image: image opened for reading", STS_ESTATE, cnt, P.stspi_write_image(rh, NULL, buf, 512, 4096, &cnt));
    ROW("flush: image opened for reading", STS_ESTATE, P.stspi_flush(rh));
    ROW_COUNT("read_image: image opened for writing", STS_ESTATE, cnt, P.stspi_read_image(wh, buf, 512, 0, &cnt));
    ROW_COUNT("write_image: zero length", STS_EINVAL, cnt, P.stspi_write_image(wh, NULL, buf, 0, 8192, &cnt));
    ROW_COUNT("read_image: zero length", STS_EINVAL, cnt, P.stspi_read_image(rh, buf, 0, 0, &cnt));
    ROW_COUNT("write_image: NULL buffer", STS_EINVAL, cnt, P.stspi_write_image(wh, NULL, NULL, 512, 8192, &cnt));
    ROW("write_image: NULL written", STS_EINVAL, P.stspi_write_image(wh, NULL, buf, 512, 8192, NULL));
    ROW_COUNT("read_image: NULL buffer", STS_EINVAL, cnt, P.stspi_read_image(rh, NULL, 512, 0, &cnt));
    ROW("read_image: NULL nread", STS_EINVAL, P.stspi_read_image(rh, buf, 512, 0, NULL));
    ROW_COUNT("read_image: offset past the end (size + 1)", STS_EINVAL, cnt, P.stspi_read_image(rh, buf, 512, 4097, &cnt));
    ROW_COUNT("read_image: offset UINT64_MAX", STS_EINVAL, cnt, P.stspi_read_image(rh, buf, 512, UINT64_MAX, &cnt));
    ROW_COUNT("write_image: offset UINT64_MAX (offset + len overflows)", STS_EINVAL, cnt, P.stspi_write_image(wh, NULL, buf, 512, UINT64_MAX, &cnt));
    ROW_COUNT("write_image: offset UINT64_MAX - 100 (overflows)", STS_EINVAL, cnt, P.stspi_write_image(wh, NULL, buf, 512, UINT64_MAX - 100, &cnt));
    ROW_COUNT("write_image: offset INT64_MAX (end past 2^63 - 1)", STS_EINVAL, cnt, P.stspi_write_image(wh, NULL, buf, 512, (uint64_t)INT64_MAX, &cnt));
    ROW_COUNT("write_image: NULL image handle", STS_EHANDLE, cnt, P.stspi_write_image(NULL, NULL, buf, 512, 0, &cnt));
    ROW_COUNT("write_image: forged handle 0x1234", STS_EHANDLE, cnt, P.stspi_write_image((stsp_image_handle_t)forged, NULL, buf, 512, 0, &cnt));
    ROW_COUNT("write_image: closed image handle", STS_EHANDLE, cnt, P.stspi_write_image(closed_img, NULL, buf, 512, 0, &cnt));
    ROW_COUNT("read_image: forged handle 0x1234", STS_EHANDLE, cnt, P.stspi_read_image((stsp_image_handle_t)forged, buf, 512, 0, &cnt));
    ROW_COUNT("read_image: closed image handle", STS_EHANDLE, cnt, P.stspi_read_image(closed_img, buf, 512, 0, &cnt));
    ROW_COUNT("read_image: LSU list handle passed as image handle", STS_EHANDLE, cnt, P.stspi_read_image((stsp_image_handle_t)(void *)ll, buf, 512, 0, &cnt));
    ROW_COUNT("read_image: image list handle passed as image handle", STS_EHANDLE, cnt, P.stspi_read_image((stsp_image_handle_t)(void *)il, buf, 512, 0, &cnt));
    ROW_COUNT("read_image: server handle passed as image handle", STS_EHANDLE, cnt, P.stspi_read_image((stsp_image_handle_t)(void *)g_srv, buf, 512, 0, &cnt));
    ROW("flush: NULL handle", STS_EHANDLE, P.stspi_flush(NULL));
    ROW("flush: forged handle", STS_EHANDLE, P.stspi_flush((stsp_image_handle_t)forged));
    ROW("flush: closed handle", STS_EHANDLE, P.stspi_flush(closed_img));

    /* The write handle still works after the refused calls above. */
    fill(name_seed(pname), 8192, buf, 4096);
    rc = P.stspi_write_image(wh, NULL, buf, 4096, 8192, &cnt);
    check(rc == STS_EOK && cnt == 4096, "write handle still writes after refused arguments", "%s, %" PRIu64, status_name(rc), cnt);

    /* --- metadata */
    ROW_COUNT("write_image_meta: image opened for reading", STS_ESTATE, cnt, P.stspi_write_image_meta(rh, meta, 10, 0, &cnt));
    ROW_COUNT("write_image_meta: zero length", STS_EINVAL, cnt, P.stspi_write_image_meta(wh, meta, 0, 0, &cnt));
    ROW_COUNT("write_image_meta: NULL buffer", STS_EINVAL, cnt, P.stspi_write_image_meta(wh, NULL, 10, 0, &cnt));
    ROW("write_image_meta: NULL written", STS_EINVAL, P.stspi_write_image_meta(wh, meta, 10, 0, NULL));
    ROW_COUNT("write_image_meta: ends past STS_MAX_IMAGE_META", STS_EINVAL, cnt, P.stspi_write_image_meta(wh, meta, 10, STS_MAX_IMAGE_META - 5, &cnt));
    ROW_COUNT("write_image_meta: offset UINT64_MAX", STS_EINVAL, cnt, P.stspi_write_image_meta(wh, meta, 10, UINT64_MAX, &cnt));
    ROW_COUNT("write_image_meta: forged handle", STS_EHANDLE, cnt, P.stspi_write_image_meta((stsp_image_handle_t)forged, meta, 10, 0, &cnt));
    ROW_COUNT("read_image_meta: offset past its end", STS_EINVAL, cnt, P.stspi_read_image_meta(rh, buf, 10, sizeof meta + 1, &cnt));
    ROW_COUNT("read_image_meta: zero length", STS_EINVAL, cnt, P.stspi_read_image_meta(rh, buf, 0, 0, &cnt));
    ROW_COUNT("read_image_meta: NULL buffer", STS_EINVAL, cnt, P.stspi_read_image_meta(rh, NULL, 10, 0, &cnt));
    ROW("read_image_meta: NULL nread", STS_EINVAL, P.stspi_read_image_meta(rh, buf, 10, 0, NULL));
    ROW_COUNT("read_image_meta: closed handle", STS_EHANDLE, cnt, P.stspi_read_image_meta(closed_img, buf, 10, 0, &cnt));

    /* --- image properties */
    ROW("get_image_prop: NULL info", STS_EINVAL, P.stspi_get_image_prop(rh, NULL));
    ROW("get_image_prop: NULL handle", STS_EHANDLE, P.stspi_get_image_prop(NULL, &ii));
    ROW("get_image_prop: forged handle", STS_EHANDLE, P.stspi_get_image_prop((stsp_image_handle_t)forged, &ii));
    ROW("get_image_prop: closed handle", STS_EHANDLE, P.stspi_get_image_prop(closed_img, &ii));
    ROW("get_image_prop: LSU list handle passed as image handle", STS_EHANDLE, P.stspi_get_image_prop((stsp_image_handle_t)(void *)ll, &ii));
    ROW("get_image_prop_byname: NULL lsu", STS_EINVAL, P.stspi_get_image_prop_byname(NULL, &cdef, &ii));
    ROW("get_image_prop_byname: NULL image definition", STS_EINVAL, P.stspi_get_image_prop_byname(&g_lsu1, NULL, &ii));
    ROW("get_image_prop_byname: NULL info", STS_EINVAL, P.stspi_get_image_prop_byname(&g_lsu1, &cdef, NULL));
    ROW("get_image_prop_byname: missing image", STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu1, &missing, &ii));
    ROW("get_image_prop_byname: existing name, other date", STS_ENOENT, P.stspi_get_image_prop_byname(&g_lsu1, &wrongdate, &ii));
    ROW("get_image_prop_byname: unknown LSU", STS_ENOENT, P.stspi_get_image_prop_byname(&lsu_x, &cdef, &ii));
    d = mk_def("..", DATE, 1);
    ROW("get_image_prop_byname: name '..'", STS_EINVAL, P.stspi_get_image_prop_byname(&g_lsu1, &d, &ii));
    ROW("get_image_prop_byname: forged server handle in sts_lsu_t", STS_EHANDLE, P.stspi_get_image_prop_byname(&lsu_forged, &cdef, &ii));

    /* --- image lists */
    ROW("open_image_list: NULL lsu", STS_EINVAL, P.stspi_open_image_list(NULL, NULL, &stray_il));
    ROW("open_image_list: NULL list out-pointer", STS_EINVAL, P.stspi_open_image_list(&g_lsu1, NULL, NULL));
    ROW("open_image_list: unknown LSU", STS_ENOENT, P.stspi_open_image_list(&lsu_x, NULL, &stray_il));
    d = def_raw(name, STS_MAX_IMAGENAME);
    ROW("open_image_list: filter basename not NUL-terminated", STS_EINVAL, P.stspi_open_image_list(&g_lsu1, &d, &stray_il));
    ROW("open_image_list: closed server handle in sts_lsu_t", STS_EHANDLE, P.stspi_open_image_list(&lsu_closed, NULL, &stray_il));
    ROW("list_image: NULL info", STS_EINVAL, P.stspi_list_image(il, NULL));
    ROW("list_image: NULL list handle", STS_EHANDLE, P.stspi_list_image(NULL, &ii));
    ROW("list_image: forged handle 0x1230", STS_EHANDLE, P.stspi_list_image((stsp_image_list_handle_t)forged0, &ii));
    ROW("list_image: closed list handle", STS_EHANDLE, P.stspi_list_image(closed_il, &ii));
    ROW("list_image: LSU list handle passed as image list", STS_EHANDLE, P.stspi_list_image((stsp_image_list_handle_t)(void *)ll, &ii));
    ROW("close_image_list: LSU list handle (wrong type)", STS_EHANDLE, P.stspi_close_image_list((stsp_image_list_handle_t)(void *)ll));
    ROW("close_image_list: already closed (double close)", STS_EHANDLE, P.stspi_close_image_list(closed_il));

    /* --- delete */
    ROW("delete_image: NULL lsu", STS_EINVAL, P.stspi_delete_image(NULL, &cdef));
    ROW("delete_image: NULL image definition", STS_EINVAL, P.stspi_delete_image(&g_lsu1, NULL));
    d = mk_def("badinput_complete/manifest", DATE, 1);
    ROW("delete_image: name with '/'", STS_EINVAL, P.stspi_delete_image(&g_lsu1, &d));
    d = mk_def("..", DATE, 1);
    ROW("delete_image: name '..'", STS_EINVAL, P.stspi_delete_image(&g_lsu1, &d));
    ROW("delete_image: unknown LSU", STS_ENOENT, P.stspi_delete_image(&lsu_x, &cdef));
    ROW("delete_image: forged server handle in sts_lsu_t", STS_EHANDLE, P.stspi_delete_image(&lsu_forged, &cdef));
    ROW("delete_image: missing image is not an error", STS_EOK, P.stspi_delete_image(&g_lsu1, &missing));
    /* The image def is (basename, date): another date names an image that does not exist,
       and "deleting an image that does not exist succeeds"; the stored one is left alone. */
    ROW("delete_image: existing name, other date (no such image: succeeds)", STS_EOK, P.stspi_delete_image(&g_lsu1, &wrongdate));
    ROW("  ... and the image of the other date is still there", STS_EOK, P.stspi_get_image_prop_byname(&g_lsu1, &cdef, &ii));
    check(on_disk("lsu1", cname), "refused deletes left badinput_complete in place", "it is gone");

    /* --- copy */
    d = mk_def("badinput_copy", "", 1);
    ROW("copy_image: unknown flags (1)", STS_EINVAL, P.stspi_copy_image(&g_lsu2, &d, &g_lsu1, &cdef, 1));
    ROW("copy_image: NULL target lsu", STS_EINVAL, P.stspi_copy_image(NULL, &d, &g_lsu1, &cdef, 0));
    ROW("copy_image: NULL target image", STS_EINVAL, P.stspi_copy_image(&g_lsu2, NULL, &g_lsu1, &cdef, 0));
    ROW("copy_image: NULL source lsu", STS_EINVAL, P.stspi_copy_image(&g_lsu2, &d, NULL, &cdef, 0));
    ROW("copy_image: NULL source image", STS_EINVAL, P.stspi_copy_image(&g_lsu2, &d, &g_lsu1, NULL, 0));
    ROW("copy_image: missing source", STS_ENOENT, P.stspi_copy_image(&g_lsu2, &d, &g_lsu1, &missing, 0));
    ROW("copy_image: source pending (open for writing)", STS_ESTATE, P.stspi_copy_image(&g_lsu2, &d, &g_lsu1, &pdef, 0));
    ROW("copy_image: target exists", STS_EEXIST, P.stspi_copy_image(&g_lsu1, &cdef, &g_lsu1, &cdef, 0));
    ROW("copy_image: target LSU unknown", STS_ENOENT, P.stspi_copy_image(&lsu_x, &d, &g_lsu1, &cdef, 0));
    ROW("copy_image: source LSU unknown", STS_ENOENT, P.stspi_copy_image(&g_lsu2, &d, &lsu_x, &cdef, 0));
    d2 = mk_def("../escape", "", 1);
    ROW("copy_image: target name '../escape'", STS_EINVAL, P.stspi_copy_image(&g_lsu2, &d2, &g_lsu1, &cdef, 0));
    ROW("copy_image: forged server handle in target sts_lsu_t", STS_EHANDLE, P.stspi_copy_image(&lsu_forged, &d, &g_lsu1, &cdef, 0));
    check(!on_disk("lsu2", "badinput_copy"), "refused copies left nothing on lsu2", "badinput_copy exists");

    /* --- close_image */
    ROW("close_image: unknown flags (2)", STS_EINVAL, P.stspi_close_image(rh, 2));
    ROW("close_image: unknown flags (-1)", STS_EINVAL, P.stspi_close_image(wh, -1));
    ROW("close_image: NULL handle", STS_EHANDLE, P.stspi_close_image(NULL, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image: forged handle", STS_EHANDLE, P.stspi_close_image((stsp_image_handle_t)forged, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image: LSU list handle (wrong type)", STS_EHANDLE, P.stspi_close_image((stsp_image_handle_t)(void *)ll, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image: closed handle", STS_EHANDLE, P.stspi_close_image(closed_img, STS_CLOSEF_IH_COMPLETE));

    /* --- LSU labels and A.I.R. (this server has no [[replication]]) */
    {
        sts_lsu_rep_info_t ri;
        sts_opid_t op;
        sts_async_status_t ast;
        sts_event_t ev;
        stsp_evchannel_handle_t evc = NULL;
        uint32_t n = 0;
        char longlabel[300];
        memset(longlabel, 'x', sizeof longlabel - 1);
        longlabel[sizeof longlabel - 1] = 0;
        ROW("label_lsu: NULL LSU", STS_EINVAL, P.stspi_label_lsu(NULL, "x"));
        ROW("label_lsu: NULL label", STS_EINVAL, P.stspi_label_lsu(&g_lsu1, NULL));
        ROW("label_lsu: forged server handle", STS_EHANDLE, P.stspi_label_lsu(&lsu_forged, "x"));
        ROW("label_lsu: unknown LSU", STS_ENOENT, P.stspi_label_lsu(&lsu_x, "x"));
        ROW("label_lsu: a newline", STS_EINVAL, P.stspi_label_lsu(&g_lsu1, "a\nb"));
        ROW("label_lsu: 299 bytes", STS_E2BIG, P.stspi_label_lsu(&g_lsu1, longlabel));
        ROW("get_lsu_rep_prop: NULL LSU", STS_EINVAL, P.stspi_get_lsu_rep_prop(NULL, &ri));
        ROW("get_lsu_rep_prop: NULL info", STS_EINVAL, P.stspi_get_lsu_rep_prop(&g_lsu1, NULL));
        ROW("get_lsu_rep_prop: forged server handle", STS_EHANDLE, P.stspi_get_lsu_rep_prop(&lsu_forged, &ri));
        ROW("get_lsu_rep_prop: unknown LSU", STS_ENOENT, P.stspi_get_lsu_rep_prop(&lsu_x, &ri));
        ROW("async_copy_image: NULL LSU", STS_EINVAL, P.stspi_async_copy_image(NULL, &cdef, 1, NULL, NULL, 0, &op));
        ROW("async_copy_image: NULL images", STS_EINVAL, P.stspi_async_copy_image(&g_lsu1, NULL, 1, NULL, NULL, 0, &op));
        ROW("async_copy_image: no images", STS_EINVAL, P.stspi_async_copy_image(&g_lsu1, &cdef, 0, NULL, NULL, 0, &op));
        ROW("async_copy_image: NULL opid", STS_EINVAL, P.stspi_async_copy_image(&g_lsu1, &cdef, 1, NULL, NULL, 0, NULL));
        ROW("async_copy_image: unknown flags", STS_EINVAL, P.stspi_async_copy_image(&g_lsu1, &cdef, 1, NULL, NULL, 7, &op));
        ROW("async_copy_image: forged server handle", STS_EHANDLE,
            P.stspi_async_copy_image(&lsu_forged, &cdef, 1, NULL, NULL, 0, &op));
        ROW("async_copy_image: LSU without [[replication]]", STS_ENOTSUP,
            P.stspi_async_copy_image(&g_lsu1, &cdef, 1, NULL, NULL, 0, &op));
        ROW("async_wait: NULL opid", STS_EINVAL, P.stspi_async_wait(NULL, 0, &ast));
        memset(&op, 0, sizeof op);
        snprintf(op.op_id, sizeof op.op_id, "not an operation id");
        ROW("async_wait: not an operation id", STS_EINVAL, P.stspi_async_wait(&op, 0, &ast));
        ROW("async_cancel: not an operation id", STS_EINVAL, P.stspi_async_cancel(&op));
        memset(op.op_id, 'o', sizeof op.op_id);
        ROW("async_wait: opid not NUL-terminated", STS_EINVAL, P.stspi_async_wait(&op, 0, &ast));
        memset(&op, 0, sizeof op);
        snprintf(op.op_id, sizeof op.op_id, "VastData:not-open/lsu1/0123456789abcdef");
        ROW("async_wait: source server not open here", STS_ESTATE, P.stspi_async_wait(&op, 0, &ast));
        snprintf(op.op_id, sizeof op.op_id, "%s/lsu1/0123456789abcdef", g_server);
        ROW("async_wait: no such operation", STS_ENOENT, P.stspi_async_wait(&op, 0, &ast));
        ROW("async_cancel: no such operation", STS_ENOENT, P.stspi_async_cancel(&op));
        ROW("async_cancel: NULL opid", STS_EINVAL, P.stspi_async_cancel(NULL));
        ROW("open_evchannel: NULL LSU", STS_EINVAL, P.stspi_open_evchannel(NULL, 0, &evc));
        ROW("open_evchannel: NULL handle out-pointer", STS_EINVAL, P.stspi_open_evchannel(&g_lsu1, 0, NULL));
        ROW("open_evchannel: unknown LSU", STS_ENOENT, P.stspi_open_evchannel(&lsu_x, 0, &evc));
        ROW("open_evchannel: forged server handle", STS_EHANDLE, P.stspi_open_evchannel(&lsu_forged, 0, &evc));
        ROW("get_event: forged channel", STS_EHANDLE, P.stspi_get_event((stsp_evchannel_handle_t)forged, &ev));
        ROW("get_event: NULL channel", STS_EHANDLE, P.stspi_get_event(NULL, &ev));
        ROW("get_event: an image handle", STS_EHANDLE, P.stspi_get_event((stsp_evchannel_handle_t)(void *)rh, &ev));
        ROW("get_event_payload: forged channel", STS_EHANDLE,
            P.stspi_get_event_payload((stsp_evchannel_handle_t)forged_dead, 1, NULL, 0, &n));
        ROW("close_evchannel: forged channel", STS_EHANDLE, P.stspi_close_evchannel((stsp_evchannel_handle_t)forged0));
        if (row("open_evchannel on lsu1", "P.stspi_open_evchannel(&g_lsu1, 0, &evc)", STS_EOK,
                P.stspi_open_evchannel(&g_lsu1, 0, &evc))) {
            ROW("get_event: empty journal", STS_ENO_MORE_ENTRIES, P.stspi_get_event(evc, &ev));
            ROW("get_event: NULL event", STS_EINVAL, P.stspi_get_event(evc, NULL));
            ROW("get_event_payload: no such event", STS_ENOENT, P.stspi_get_event_payload(evc, 1, NULL, 0, &n));
            ROW("get_event_payload: NULL count", STS_EINVAL, P.stspi_get_event_payload(evc, 1, NULL, 0, NULL));
            ROW("close_evchannel", STS_EOK, P.stspi_close_evchannel(evc));
            ROW("close_evchannel: closed channel", STS_EHANDLE, P.stspi_close_evchannel(evc));
        }
    }

    /* --- close_server while things are open on it */
    rc = P.stspi_open_server(NULL, g_server, &cred, NULL, &srv2);
    if (TRY("open a second server handle", rc)) {
        sts_lsu_t l2 = mk_lsu(srv2, "lsu1");
        stsp_image_handle_t h2 = NULL;
        stsp_lsu_list_handle_t ll2 = NULL;
        stsp_image_list_handle_t il2 = NULL;
        if (TRY("open badinput_complete through it", P.stspi_open_image(&l2, &cdef, STS_O_READ, &h2))) {
            ROW("close_server: an image is open", STS_EBUSY, P.stspi_close_server(srv2));
            ROW("  ... the server handle stays valid (get_server_prop)", STS_EOK, P.stspi_get_server_prop(srv2, &si));
            TRY("close the image", P.stspi_close_image(h2, STS_CLOSEF_IH_COMPLETE));
        }
        if (TRY("open an LSU list through it", P.stspi_open_lsu_list(srv2, NULL, &ll2))) {
            ROW("close_server: an LSU list is open", STS_EBUSY, P.stspi_close_server(srv2));
            TRY("close the LSU list", P.stspi_close_lsu_list(ll2));
        }
        if (TRY("open an image list through it", P.stspi_open_image_list(&l2, NULL, &il2))) {
            ROW("close_server: an image list is open", STS_EBUSY, P.stspi_close_server(srv2));
            TRY("close the image list", P.stspi_close_image_list(il2));
        }
        ROW("close_server: nothing open any more", STS_EOK, P.stspi_close_server(srv2));
        ROW("close_server: again (double close)", STS_EHANDLE, P.stspi_close_server(srv2));
        ROW("open_image through the closed server handle", STS_EHANDLE, P.stspi_open_image(&l2, &cdef, STS_O_READ, &stray_img));
    }

    /* --- Double closes of the handles used above; the lists and images are intact first. */
    ROW("list_image on the image list after the wrong-type calls", STS_EOK, P.stspi_list_image(il, &ii));
    ROW("list_lsu on the LSU list after the wrong-type calls", STS_EOK, P.stspi_list_lsu(ll, &ln));
    ROW("close_image_list", STS_EOK, P.stspi_close_image_list(il));
    ROW("close_image_list: double close", STS_EHANDLE, P.stspi_close_image_list(il));
    ROW("close_lsu_list", STS_EOK, P.stspi_close_lsu_list(ll));
    ROW("close_lsu_list: double close", STS_EHANDLE, P.stspi_close_lsu_list(ll));

    /* A close refused for its flags changes nothing (header: "Unknown flags change nothing:
       STS_EINVAL and the handle stays open"); the host then closes it properly. */
    ROW("close_image with unknown flags left the read handle open", STS_EOK, P.stspi_get_image_prop(rh, &ii));
    ROW("close_image: read handle", STS_EOK, P.stspi_close_image(rh, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image: read handle, double close", STS_EHANDLE, P.stspi_close_image(rh, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image with unknown flags left the write handle open", STS_EOK, P.stspi_get_image_prop(wh, &ii));
    ROW("close_image: write handle COMPLETE", STS_EOK, P.stspi_close_image(wh, STS_CLOSEF_IH_COMPLETE));
    ROW("close_image: write handle, double close", STS_EHANDLE, P.stspi_close_image(wh, STS_CLOSEF_IH_COMPLETE));
    check_prop_byname(&g_lsu1, &pdef, 8192 + 4096, STS_II_IMAGE_CREATED, STS_II_IMAGE_PENDING | STS_II_BUSY_WRITE,
                      "badinput_pending is complete with the 12288 bytes written");

    /* --- Cleanup */
    TRY("cleanup: delete badinput_complete", P.stspi_delete_image(&g_lsu1, &cdef));
    TRY("cleanup: delete badinput_pending", P.stspi_delete_image(&g_lsu1, &pdef));
    check(!on_disk("lsu1", cname) && !on_disk("lsu1", pname), "cleanup: nothing of the bad-input images left",
          "%s/lsu1/%s or %s is still there", g_mount, cname, pname);
}

/* ---------------------------------------------------------------------------------------- */
/* Out-of-order writes, overlapping restart, two writers                                     */
/* ---------------------------------------------------------------------------------------- */

/* Write blocks [first, last) of the stream in reverse order (the server says WRITE_RANDOM). */
static int write_blocks_reverse(stsp_image_handle_t h, uint64_t seed, uint64_t from, uint64_t to,
                                char *why, size_t why_len)
{
    uint64_t nblocks = (to - from + BLOCK - 1) / BLOCK, i;
    for (i = nblocks; i-- > 0;) {
        uint64_t off = from + i * BLOCK;
        uint64_t end = off + BLOCK < to ? off + BLOCK : to;
        int rc = write_range(h, seed, off, end, BLOCK, why, why_len);
        if (rc != STS_EOK)
            return rc;
    }
    return STS_EOK;
}

static void random_writes(void)
{
    const char *n1 = CLIENT "_1638486100_C1_F1", *n2 = CLIENT "_1638486200_C1_F1";
    sts_image_def_t d1 = mk_def(n1, "1638486100", 1), d2 = mk_def(n2, "1638486200", 1);
    uint64_t s1 = name_seed(n1), s2 = name_seed(n2), size = 6u * BLOCK + 333, cut = 4u * BLOCK;
    stsp_image_handle_t h = NULL, a = NULL, b = NULL;
    char why[512] = "";
    int rc;

    section("out-of-order writes and a restart that rewrites from an earlier checkpoint");
    if (TRY("create an image written back to front", P.stspi_create_image(&g_lsu1, &d1, 0, &h))) {
        rc = write_blocks_reverse(h, s1, 0, size, why, sizeof why);
        check(rc == STS_EOK, "write its 7 blocks in reverse order", "%s", why);
        TRY("close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
        verify_image(&g_lsu1, &d1, s1, size, 0, "image written back to front");
        TRY("expire it", P.stspi_delete_image(&g_lsu1, &d1));
    }
    h = NULL;
    if (TRY("create an image for an overlapping restart", P.stspi_create_image(&g_lsu1, &d2, 0, &h))) {
        rc = write_range(h, s2, 0, cut, BLOCK, why, sizeof why);
        check(rc == STS_EOK, "write 1 MiB, close INCOMPLETE", "%s", why);
        TRY("close INCOMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_INCOMPLETE));
        h = NULL;
        if (TRY("reopen STS_O_APPEND", P.stspi_open_image(&g_lsu1, &d2, STS_O_APPEND, &h))) {
            /* The last checkpoint NetBackup knows of may be before the last byte written. */
            rc = write_range(h, s2, cut - BLOCK - 4096, size, BLOCK, why, sizeof why);
            check(rc == STS_EOK, "resume 260 KiB before the end (rewriting those bytes)", "%s", why);
            TRY("close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
            check_prop_byname(&g_lsu1, &d2, size, STS_II_IMAGE_CREATED, STS_II_IMAGE_PENDING, "size counts rewritten bytes once");
            verify_image(&g_lsu1, &d2, s2, size, 0, "image resumed with overlap");
        }
        TRY("expire it", P.stspi_delete_image(&g_lsu1, &d2));
    }

    /*
     * A job restarted while the old bptm still holds the image: the new writer takes over with
     * STS_O_APPEND and finishes; the old one must not be able to commit over it.
     */
    section("two writers: a restarted job takes over a pending image");
    if (!TRY("writer A: create", P.stspi_create_image(&g_lsu1, &d2, 0, &a)))
        return;
    rc = write_range(a, s2, 0, 2u * BLOCK, BLOCK, why, sizeof why);
    check(rc == STS_EOK, "writer A: write 512 KiB", "%s", why);
    TRY("writer A: flush (checkpoint)", P.stspi_flush(a));
    if (TRY("writer B: open STS_O_APPEND while A still holds it", P.stspi_open_image(&g_lsu1, &d2, STS_O_APPEND, &b))) {
        rc = write_range(b, s2, 2u * BLOCK, size, BLOCK, why, sizeof why);
        check(rc == STS_EOK, "writer B: write the rest", "%s", why);
        TRY("writer B: close COMPLETE", P.stspi_close_image(b, STS_CLOSEF_IH_COMPLETE));
    }
    /* A wakes up: it writes garbage over the image and tries to finish it. */
    fill(0xbad, 0, buf_data, BLOCK);
    rc = P.stspi_write_image(a, NULL, buf_data, BLOCK, 0, &(uint64_t){0});
    printf("      writer A: write after the takeover: %s\n", status_name(rc));
    rc = P.stspi_close_image(a, STS_CLOSEF_IH_COMPLETE);
    check(rc != STS_EOK, "writer A: close after the takeover is refused", "got %s", status_name(rc));
    printf("      writer A: close COMPLETE after the takeover: %s\n", status_name(rc));
    expect("writer A's handle is released anyway", STS_EHANDLE, P.stspi_close_image(a, STS_CLOSEF_IH_COMPLETE));
    verify_image(&g_lsu1, &d2, s2, size, 0, "image finished by writer B");
    TRY("expire it", P.stspi_delete_image(&g_lsu1, &d2));
}

/* ---------------------------------------------------------------------------------------- */
/* Threads: several streams at once, and one read handle shared by several threads           */
/* ---------------------------------------------------------------------------------------- */

#define N_THREADS 4

struct job {
    int index;
    const struct image *shared; /* the image read through the shared handle */
    stsp_image_handle_t shared_h;
    char name[STS_MAX_IMAGENAME];
    uint64_t seed, size;
    int rc;       /* first failing status */
    char why[256];
};

/* A stream of its own: create, write, close, read back. Own buffers; results in `j`. */
static void *stream_job(void *arg)
{
    struct job *j = arg;
    sts_image_def_t def = mk_def(j->name, DATE, 1);
    stsp_image_handle_t h = NULL;
    unsigned char *b = malloc(BLOCK), *e = malloc(BLOCK);
    uint64_t off, n = 0;
    j->rc = STS_EOK;
    if (!b || !e) {
        j->rc = STS_EPLUGIN;
        snprintf(j->why, sizeof j->why, "out of memory");
        goto out;
    }
    if ((j->rc = P.stspi_create_image(&g_lsu1, &def, 0, &h)) != STS_EOK) {
        snprintf(j->why, sizeof j->why, "create: %s", status_name(j->rc));
        goto out;
    }
    for (off = 0; off < j->size && j->rc == STS_EOK; off += BLOCK) {
        uint64_t len = j->size - off < BLOCK ? j->size - off : BLOCK;
        fill(j->seed, off, b, (size_t)len);
        j->rc = P.stspi_write_image(h, NULL, b, len, off, &n);
        if (j->rc == STS_EOK && n != len)
            j->rc = STS_EPLUGIN;
    }
    if (j->rc != STS_EOK) {
        snprintf(j->why, sizeof j->why, "write at %" PRIu64 ": %d", off, j->rc);
        P.stspi_close_image(h, STS_CLOSEF_IH_INCOMPLETE);
        goto out;
    }
    if ((j->rc = P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE)) != STS_EOK) {
        snprintf(j->why, sizeof j->why, "close: %d", j->rc);
        goto out;
    }
    h = NULL;
    if ((j->rc = P.stspi_open_image(&g_lsu1, &def, STS_O_READ, &h)) != STS_EOK) {
        snprintf(j->why, sizeof j->why, "open: %d", j->rc);
        goto out;
    }
    for (off = 0; off < j->size && j->rc == STS_EOK; off += n) {
        j->rc = P.stspi_read_image(h, b, BLOCK, off, &n);
        if (j->rc != STS_EOK || n == 0 || n > BLOCK) {
            snprintf(j->why, sizeof j->why, "read at %" PRIu64 ": %d, %" PRIu64 " bytes", off, j->rc, n);
            if (j->rc == STS_EOK)
                j->rc = STS_EPLUGIN;
            break;
        }
        fill(j->seed, off, e, (size_t)n);
        if (memcmp(b, e, (size_t)n) != 0) {
            snprintf(j->why, sizeof j->why, "data differs in the %" PRIu64 " bytes at %" PRIu64, n, off);
            j->rc = STS_EPLUGIN;
        }
    }
    P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE);
out:
    free(b);
    free(e);
    return NULL;
}

/* Random reads through one handle shared with the other threads. */
static void *shared_reader(void *arg)
{
    struct job *j = arg;
    unsigned char *b = malloc(BLOCK), *e = malloc(BLOCK);
    uint64_t x = 0x1234567ULL + (uint64_t)j->index, n = 0;
    int i;
    j->rc = STS_EOK;
    if (!b || !e) {
        j->rc = STS_EPLUGIN;
        goto out;
    }
    for (i = 0; i < 60 && j->rc == STS_EOK; i++) {
        uint64_t off, want;
        x = splitmix64(x);
        off = x % j->shared->size;
        want = 1 + (x >> 40) % BLOCK;
        j->rc = P.stspi_read_image(j->shared_h, b, want, off, &n);
        if (j->rc != STS_EOK || n != (j->shared->size - off < want ? j->shared->size - off : want)) {
            snprintf(j->why, sizeof j->why, "read %" PRIu64 " at %" PRIu64 ": %d, %" PRIu64 " bytes", want, off, j->rc, n);
            if (j->rc == STS_EOK)
                j->rc = STS_EPLUGIN;
            break;
        }
        fill(j->shared->seed, off, e, (size_t)n);
        if (memcmp(b, e, (size_t)n) != 0) {
            snprintf(j->why, sizeof j->why, "data differs in the %" PRIu64 " bytes at %" PRIu64, n, off);
            j->rc = STS_EPLUGIN;
        }
    }
out:
    free(b);
    free(e);
    return NULL;
}

static void threads(void)
{
    struct job jobs[N_THREADS], readers[N_THREADS];
    pthread_t t[2 * N_THREADS];
    int started[2 * N_THREADS], i, lists = 0, rc;
    stsp_image_handle_t shared = NULL;
    const struct image *src = &backup[1]; /* F1 */
    sts_image_def_t sdef = mk_def(src->name, DATE, 1);
    char label[512];

    section("threads: 4 backup streams at once, 4 readers sharing one handle, listing meanwhile");
    if (!TRY("open F1 for reading (the shared handle)", P.stspi_open_image(&g_lsu1, &sdef, STS_O_READ, &shared)))
        return;
    memset(jobs, 0, sizeof jobs);
    memset(readers, 0, sizeof readers);
    for (i = 0; i < N_THREADS; i++) {
        jobs[i].index = i;
        snprintf(jobs[i].name, sizeof jobs[i].name, "client%d_1638486400_C1_F1", i + 2);
        jobs[i].seed = name_seed(jobs[i].name);
        jobs[i].size = 4u * BLOCK + 100u * (unsigned)i;
        started[i] = pthread_create(&t[i], NULL, stream_job, &jobs[i]) == 0;
        readers[i].index = i;
        readers[i].shared = src;
        readers[i].shared_h = shared;
        started[N_THREADS + i] = pthread_create(&t[N_THREADS + i], NULL, shared_reader, &readers[i]) == 0;
    }
    /* bpstsinfo polling the LSU while the streams run. */
    for (i = 0; i < 20; i++) {
        stsp_image_list_handle_t il = NULL;
        sts_image_info_t info;
        if (P.stspi_open_image_list(&g_lsu1, NULL, &il) != STS_EOK)
            break;
        while ((rc = P.stspi_list_image(il, &info)) == STS_EOK)
            ;
        if (rc == STS_ENO_MORE_ENTRIES && P.stspi_close_image_list(il) == STS_EOK)
            lists++;
    }
    for (i = 0; i < 2 * N_THREADS; i++)
        if (started[i])
            pthread_join(t[i], NULL);
    check(lists == 20, "20 image listings while the streams ran", "%d completed", lists);
    for (i = 0; i < N_THREADS; i++) {
        sts_image_def_t d = mk_def(jobs[i].name, DATE, 1);
        snprintf(label, sizeof label, "stream %d: %s written and read back", i, jobs[i].name);
        check(started[i] && jobs[i].rc == STS_EOK, label, "%s", started[i] ? jobs[i].why : "thread not started");
        snprintf(label, sizeof label, "shared-handle reader %d: 60 random reads of F1", i);
        check(started[N_THREADS + i] && readers[i].rc == STS_EOK, label, "%s", started[N_THREADS + i] ? readers[i].why : "thread not started");
        snprintf(label, sizeof label, "stream %d: expire %s", i, jobs[i].name);
        TRY(label, P.stspi_delete_image(&g_lsu1, &d));
    }
    TRY("close the shared read handle", P.stspi_close_image(shared, STS_CLOSEF_IH_COMPLETE));
}

/* ---------------------------------------------------------------------------------------- */
/* Damaged storage                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Path of the first file in <mount>/<lsu>/<image>/ whose name ends with `suffix`. */
static int find_file(const char *lsu, const char *image, const char *suffix, char *out, size_t cap)
{
    char dir[6000];
    DIR *d;
    struct dirent *e;
    int found = 0;
    size_t sl = strlen(suffix);
    snprintf(dir, sizeof dir, "%s/%s/%s", g_mount, lsu, image);
    d = opendir(dir);
    if (!d)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (e->d_name[0] != '.' && nl >= sl && strcmp(e->d_name + nl - sl, suffix) == 0) {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* XOR one byte of a file at `off`. */
static int flip_byte(const char *path, off_t off)
{
    unsigned char c;
    int fd = open(path, O_RDWR), ok;
    if (fd < 0)
        return 0;
    ok = pread(fd, &c, 1, off) == 1;
    c ^= 0x20;
    ok = ok && pwrite(fd, &c, 1, off) == 1;
    close(fd);
    return ok;
}

/* Read the image sequentially; the first failing status, or STS_EOK. */
static int read_all_status(const sts_lsu_t *lsu, const sts_image_def_t *def, uint64_t size)
{
    stsp_image_handle_t h = NULL;
    uint64_t off = 0, n = 0;
    int rc = P.stspi_open_image(lsu, def, STS_O_READ, &h);
    if (rc != STS_EOK)
        return rc;
    while (off < size && rc == STS_EOK) {
        rc = P.stspi_read_image(h, buf_data, BLOCK, off, &n);
        if (rc == STS_EOK && n == 0)
            break;
        off += n;
    }
    P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE);
    return rc;
}

static void damaged_storage(void)
{
    const char *name = CLIENT "_1638486300_C1_F1";
    sts_image_def_t def = mk_def(name, "1638486300", 1);
    uint64_t seed = name_seed(name), size = 3u * BLOCK;
    stsp_image_handle_t h = NULL;
    stsp_image_list_handle_t il = NULL;
    sts_image_info_t info;
    char piece[8192], manifest[8192], why[512] = "";
    int rc, listed = 0;

    section("damaged storage (bit rot, truncation, torn manifest)");
    if (!TRY("create a one-piece image", P.stspi_create_image(&g_lsu1, &def, 0, &h)))
        return;
    rc = write_range(h, seed, 0, size, BLOCK, why, sizeof why);
    check(rc == STS_EOK, "write 768 KiB", "%s", why);
    TRY("close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
    if (!check(find_file("lsu1", name, ".piece", piece, sizeof piece) &&
                   find_file("lsu1", name, "manifest", manifest, sizeof manifest),
               "find its piece and manifest on storage", "not found under %s/lsu1/%s", g_mount, name))
        return;

    check(flip_byte(piece, 300000), "flip one bit of the piece", "%s", piece);
    expect("sequential read of the damaged piece: STS_ECORRUPT", STS_ECORRUPT, read_all_status(&g_lsu1, &def, size));
    check(flip_byte(piece, 300000), "flip it back", "%s", piece);
    expect("repaired piece reads clean", STS_EOK, read_all_status(&g_lsu1, &def, size));

    check(truncate(piece, 500000) == 0, "truncate the piece to 500000 bytes", "%s", piece);
    expect("read of the truncated piece: STS_ECORRUPT", STS_ECORRUPT, read_all_status(&g_lsu1, &def, size));

    check(flip_byte(manifest, 40), "flip one bit of the manifest", "%s", manifest);
    h = NULL;
    rc = P.stspi_open_image(&g_lsu1, &def, STS_O_READ, &h);
    expect("open_image with a corrupt manifest: STS_ECORRUPT", STS_ECORRUPT, rc);
    if (rc == STS_EOK)
        P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE);
    expect("get_image_prop_byname with a corrupt manifest: STS_ECORRUPT", STS_ECORRUPT,
           P.stspi_get_image_prop_byname(&g_lsu1, &def, &info));
    if (TRY("open_image_list with a corrupt image in the LSU", P.stspi_open_image_list(&g_lsu1, NULL, &il))) {
        while ((rc = P.stspi_list_image(il, &info)) == STS_EOK)
            listed += EQ(info.imo_def.img_basename, name);
        expect("  ... the list ends normally", STS_ENO_MORE_ENTRIES, rc);
        check(listed == 0, "  ... and skips the corrupt image", "listed %d times", listed);
        TRY("close_image_list", P.stspi_close_image_list(il));
    }
    TRY("delete the image with a corrupt manifest", P.stspi_delete_image(&g_lsu1, &def));
    check(!on_disk("lsu1", name), "nothing of it left on storage", "%s/lsu1/%s exists", g_mount, name);
}

/* ---------------------------------------------------------------------------------------- */
/* Shutdown with an image open, re-init and restart                                          */
/* ---------------------------------------------------------------------------------------- */

static void shutdown_and_restart(void)
{
    const char *iname = CLIENT "_1638486999_C1_F1";
    sts_image_def_t def = mk_def(iname, "1638486999", 1);
    uint64_t seed = name_seed(iname), size = 3u * BLOCK + 1000, cut = 2u * BLOCK, cnt = 0;
    stsp_image_handle_t h = NULL;
    sts_server_info_t si;
    sts_plugin_info_t pi;
    sts_cred_t cred = mk_cred();
    char why[512] = "";
    int rc;

    section("terminate with handles open (process exit), init again, resume");
    TRY("init a second time (nested, NULL info)", P.stspi_init(STSPI_VASTDATA_API_VERSION, NULL));
    TRY("terminate once: the first init still holds", P.stspi_terminate());
    TRY("server handle still valid after the nested terminate", P.stspi_get_server_prop(g_srv, &si));

    if (TRY("create an image of a second backup", P.stspi_create_image(&g_lsu1, &def, 0, &h))) {
        rc = write_range(h, seed, 0, cut, BLOCK, why, sizeof why);
        check(rc == STS_EOK, "write its first 512 KiB, then no close", "%s", why);
    }
    TRY("terminate (last): closes what the host left open", P.stspi_terminate());
    expect("terminate again: STS_ENOTINIT", STS_ENOTINIT, P.stspi_terminate());
    expect("claim after terminate: STS_ENOTINIT", STS_ENOTINIT, P.stspi_claim(g_server));
    expect("open_server after terminate: STS_ENOTINIT", STS_ENOTINIT, P.stspi_open_server(NULL, g_server, &cred, NULL, &stray_srv));
    reap();
    expect("server handle from before terminate: STS_EHANDLE", STS_EHANDLE, P.stspi_get_server_prop(g_srv, &si));
    expect("image handle from before terminate: STS_EHANDLE", STS_EHANDLE, P.stspi_write_image(h, NULL, buf_data, 512, cut, &cnt));
    expect("close of the image handle from before terminate: STS_EHANDLE", STS_EHANDLE, P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));

    if (!TRY("init again", P.stspi_init(STSPI_VASTDATA_API_VERSION, &pi)))
        return;
    if (!TRY("open_server again", P.stspi_open_server(NULL, g_server, &cred, NULL, &g_srv)))
        return;
    g_lsu1 = mk_lsu(g_srv, "lsu1");
    check_prop_byname(&g_lsu1, &def, cut, STS_II_IMAGE_PENDING, STS_II_IMAGE_CREATED | STS_II_BUSY_WRITE,
                      "image left open at terminate is PENDING with what was written, not busy");
    h = NULL;
    if (TRY("reopen it STS_O_APPEND", P.stspi_open_image(&g_lsu1, &def, STS_O_APPEND, &h))) {
        rc = write_range(h, seed, cut, size, BLOCK, why, sizeof why);
        check(rc == STS_EOK, "write the rest", "%s", why);
        TRY("close COMPLETE", P.stspi_close_image(h, STS_CLOSEF_IH_COMPLETE));
        verify_image(&g_lsu1, &def, seed, size, 0, "resumed image");
    }
    TRY("expire it", P.stspi_delete_image(&g_lsu1, &def));
    TRY("close_server", P.stspi_close_server(g_srv));
    TRY("terminate", P.stspi_terminate());
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    void *lib;
    double t0 = now_s(), t;
    int missing = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: %s <libstspiVastDataMT.so> <work dir> [server name]\n", argv[0]);
        return 2;
    }
    g_work = argv[2];
    if (argc > 3)
        g_server = argv[3];
    snprintf(g_mount, sizeof g_mount, "%s/mnt", g_work);

    buf_data = malloc(BUF_SIZE);
    buf_expect = malloc(BUF_SIZE);
    if (!buf_data || !buf_expect) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }

    section("load");
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!check(lib != NULL, "dlopen the plug-in", "%s", dlerror())) {
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }
#define LOAD_FN(f)                                                                             \
    P.f = (__typeof__(P.f))dlsym(lib, #f);                                                     \
    if (!P.f) {                                                                                \
        printf("FAIL  dlsym %s: not exported\n", #f);                                          \
        missing++;                                                                             \
    }
    STSPI_FUNCTIONS(LOAD_FN)
    if (!check(missing == 0 && N_FUNCTIONS == 41, "dlsym every stspi_* function of the header",
               "%d of %d missing", missing, N_FUNCTIONS)) {
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }

    discovery();
    if (g_srv) {
        t = now_s();
        do_backup();
        printf("      (backup took %.2f s)\n", now_s() - t);
        t = now_s();
        restore();
        printf("      (restore took %.2f s)\n", now_s() - t);
        section("listing");
        listing();
        copies();
        bad_inputs();
        random_writes();
        threads();
        damaged_storage();
        synthetics();
        expiry();
        shutdown_and_restart();
    } else {
        check(0, "open the storage server", "skipping everything that needs it");
    }

    dlclose(lib);
    free(buf_data);
    free(buf_expect);
    printf("\n(%.2f s)\n%d passed, %d failed\n", now_s() - t0, n_pass, n_fail);
    return n_fail ? 1 : 0;
}
