#include "util/uuid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "util/time.h"

/* Monotonicity needs the last (ms, counter) pair; one lock per id is cheap
 * next to the database write each id is for. */
static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static uint32_t counter;

void aster_uuid7(char out[ASTER_UUID_STRLEN + 1])
{
    uint8_t b[16];
    uint64_t ms = (uint64_t)(aster_time_now() / 1000);

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* getrandom on Linux >= 3.17 does not fail for 16 bytes once the pool
         * is initialised; keep ids unique anyway by mixing time in. */
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] ^= (uint8_t)(aster_mono_now() >> (i % 8));
    }
    pthread_mutex_lock(&uuid_lock);
    if (ms <= last_ms) {
        ms = last_ms;
        if (++counter > 0xfff) { /* counter exhausted: borrow the next ms */
            ms = ++last_ms;
            counter = 0;
        }
    } else {
        last_ms = ms;
        counter = b[6] & 0x3; /* start low so that many ids fit in one ms */
    }
    uint32_t c = counter;
    pthread_mutex_unlock(&uuid_lock);

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((c >> 8) & 0x0f));
    b[7] = (uint8_t)(c & 0xff);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    snprintf(out, ASTER_UUID_STRLEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool aster_uuid_is_uuid(const char *s)
{
    for (int i = 0; i < ASTER_UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return s[ASTER_UUID_STRLEN] == '\0';
}
