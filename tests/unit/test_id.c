/* Tests for core/id: ULID-based ids with a type prefix. The id generator keeps process-wide
 * state (the last id), so these tests derive expected times from the ids they get back. */
#include <stdint.h>
#include <string.h>

#include "core/id.h"
#include "core/timeutil.h"
#include "unit.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void test_id_shape(void)
{
    char id[ID_MAX];
    id_new("evt", time_now_ms(), id);
    ASSERT_EQ_INT(strlen(id), strlen("evt_") + ID_ULID_LEN);
    ASSERT_TRUE(!strncmp(id, "evt_", 4));
    ASSERT_EQ_INT(strspn(id + 4, crockford), ID_ULID_LEN);

    id_new("whk", time_now_ms(), id);
    ASSERT_TRUE(!strncmp(id, "whk_", 4));
    ASSERT_EQ_INT(strlen(id), 4 + ID_ULID_LEN);

    /* the longest prefix the header allows: 7 characters plus '_' */
    id_new("abcdefg", time_now_ms(), id);
    ASSERT_TRUE(!strncmp(id, "abcdefg_", 8));
    ASSERT_EQ_INT(strlen(id), 8 + ID_ULID_LEN);
}

static void test_id_time_round_trip(void)
{
    int64_t now = time_now_ms() + 5000; /* ahead of any id made so far */
    char id[ID_MAX];
    id_new("evt", now, id);
    int64_t ms = -1;
    ASSERT_EQ_ERR(id_time(id, &ms), ERR_OK);
    ASSERT_EQ_INT(ms, now);

    char fl[ID_MAX];
    id_floor("evt", 1795342530123, fl);
    ASSERT_EQ_ERR(id_time(fl, &ms), ERR_OK);
    ASSERT_EQ_INT(ms, 1795342530123);
    id_floor("evt", 0, fl);
    ASSERT_EQ_STR(fl, "evt_00000000000000000000000000");
}

static void test_id_strictly_increasing(void)
{
    char prev[ID_MAX], cur[ID_MAX];
    int64_t ms = time_now_ms();
    id_new("evt", ms, prev);
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        id_new("evt", ms, cur); /* the same millisecond every time */
        if (strcmp(prev, cur) >= 0 && bad++ < 3)
            unit_fail(__FILE__, __LINE__, "id %d not greater: %s then %s", i, prev, cur);
        memcpy(prev, cur, sizeof prev);
    }
    ASSERT_EQ_INT(bad, 0);

    /* a clock that steps back does not make ids go backwards */
    id_new("evt", ms - 60000, cur);
    ASSERT_TRUE(strcmp(prev, cur) < 0);
}

static void test_id_floor_ordering(void)
{
    char id[ID_MAX], lo[ID_MAX], hi[ID_MAX];
    id_new("evt", time_now_ms(), id);
    int64_t ms = -1;
    ASSERT_EQ_ERR(id_time(id, &ms), ERR_OK);
    id_floor("evt", ms, lo);
    id_floor("evt", ms + 1, hi);
    ASSERT_EQ_INT(strlen(lo), strlen(id));
    /* every id made in millisecond ms sorts in [floor(ms), floor(ms + 1)) */
    ASSERT_TRUE(strcmp(lo, id) < 0);
    ASSERT_TRUE(strcmp(id, hi) < 0);
    /* floors order by time */
    id_floor("evt", ms - 1, hi);
    ASSERT_TRUE(strcmp(hi, lo) < 0);
    /* negative times clamp to the epoch */
    id_floor("evt", -5, lo);
    ASSERT_EQ_STR(lo, "evt_00000000000000000000000000");
}

static void test_id_time_invalid(void)
{
    int64_t ms = 0;
    ASSERT_EQ_ERR(id_time("", &ms), ERR_INVALID);
    ASSERT_EQ_ERR(id_time("evt", &ms), ERR_INVALID);
    ASSERT_EQ_ERR(id_time("evt_", &ms), ERR_INVALID);
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEKTSV4RRFFQ69G5FA", &ms), ERR_INVALID);   /* 25 */
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEKTSV4RRFFQ69G5FAVV", &ms), ERR_INVALID); /* 27 */
    ASSERT_EQ_ERR(id_time("evt_01arz3ndektsv4rrffq69g5fav", &ms), ERR_INVALID);  /* case */
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEUTSV4RRFFQ69G5FAV", &ms), ERR_INVALID);  /* U */
    ASSERT_EQ_ERR(id_time("01ARZ3NDEKTSV4RRFFQ69G5FAV", &ms), ERR_INVALID);      /* no prefix */
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", &ms), ERR_OK);
    ASSERT_EQ_INT(ms, 1469922850259); /* the ULID spec's example */
}

/* id_time's contract: ERR_INVALID for anything id_new cannot have made. id_new never makes a
 * character outside Crockford's alphabet in the random part, nor a time above 48 bits. */
static void test_id_time_rejects_non_ids(void)
{
    int64_t ms = 0;
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEKTSV4RRFFQ69G5FA!", &ms), ERR_INVALID);
    ASSERT_EQ_ERR(id_time("evt_01ARZ3NDEK############????", &ms), ERR_INVALID);
    ASSERT_EQ_ERR(id_time("evt_ZZZZZZZZZZTSV4RRFFQ69G5FAV", &ms), ERR_INVALID); /* > 48 bits */
}

void unit_id(void)
{
    RUN(test_id_shape);
    RUN(test_id_time_round_trip);
    RUN(test_id_strictly_increasing);
    RUN(test_id_floor_ordering);
    RUN(test_id_time_invalid);
    RUN(test_id_time_rejects_non_ids);
}
