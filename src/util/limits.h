/* limits.h — every bound on input, with its reason.  A request that
 * exceeds one gets a 400 naming the field; nothing is truncated silently. */
#ifndef ASTER_UTIL_LIMITS_H
#define ASTER_UTIL_LIMITS_H

/* Names are keys in URLs and logs: short enough to read, long enough for
 * "team.service.environment.task" conventions. */
#define ASTER_NAME_MAX 200
/* Browsers and proxies commonly cap URLs near 2 KiB; longer ones are bugs. */
#define ASTER_URL_MAX 2048
/* Request headers a job sends: nginx's default total header budget is 8 KiB
 * a line and 32 KiB in all; we stay inside it. */
#define ASTER_HEADERS_MAX      64
#define ASTER_HEADER_NAME_MAX  256
#define ASTER_HEADER_VALUE_MAX 8192
/* A job's HTTP body is stored with the job and sent on every fire. */
#define ASTER_JOB_BODY_MAX (256 * 1024)
/* Command jobs: execve's own limit is larger, but no sane job needs more. */
#define ASTER_ARGS_MAX      256
#define ASTER_ARG_MAX       8192
#define ASTER_ENV_MAX       256
#define ASTER_ENV_NAME_MAX  256
#define ASTER_ENV_VALUE_MAX 8192
#define ASTER_PATH_MAX      4096
/* Retries and times: wide enough for every real schedule, narrow enough
 * that arithmetic on them cannot overflow (ms * 2^n stays capped). */
#define ASTER_MAX_RETRIES_MAX   100
#define ASTER_BACKOFF_MS_MAX    (7LL * 86400 * 1000)
#define ASTER_TIMEOUT_MS_MAX    (86400LL * 1000)
#define ASTER_GRACE_MS_MAX      (7LL * 86400 * 1000)
#define ASTER_ALERT_AFTER_MAX   10000
#define ASTER_NO_SUCCESS_MAX_US (366LL * 86400 * 1000000)
/* A schedule string (cron/cron.h has its own, equal cap). */
#define ASTER_SCHEDULE_MAX 1024

#endif
