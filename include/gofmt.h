/* Go-compatible parsing and formatting, pure functions with no I/O.
 *
 * The seed's configuration is written for a Go program: booleans as strconv.ParseBool reads them,
 * durations as time.ParseDuration reads them, and log timestamps as a Go reference-time layout
 * ("2006-01-02T15:04:05Z07:00"). These functions give the same answers in C. */
#ifndef PLE_GOFMT_H
#define PLE_GOFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. Returns false on anything else
 * and leaves *out untouched. */
bool go_parse_bool(const char *s, bool *out);

/* strconv.Atoi on a C string: optional sign, decimal digits only, no spaces, fits in long long.
 * Returns false (and leaves *out untouched) otherwise. */
bool go_parse_int(const char *s, long long *out);

/* time.ParseDuration: "300ms", "-1.5h", "2h45m", "1m30.5s", "0"; units ns us µs (U+00B5 and
 * U+03BC) ms s m h. The result is in nanoseconds. Returns false on syntax errors and overflow and
 * leaves *out_ns untouched. */
bool go_parse_duration(const char *s, int64_t *out_ns);

/* time.Time.Format: writes ts, broken down in UTC when utc is true and in local time otherwise,
 * into buf following a Go layout (every element of Go's layout grammar: 2006 06 Jan January 01 1
 * Mon Monday 02 _2 2 __2 002 15 03 3 04 4 05 5 PM pm MST Z07:00:00 Z07:00 Z0700 Z07 -07:00:00
 * -07:00 -0700 -07 and fractional seconds .000 .999 ,000 ,999 of 1 to 9 digits). Text that is
 * not an element is copied. Always NUL-terminates when cap > 0; returns the length written
 * (truncated to cap - 1). */
size_t go_time_format(char *buf, size_t cap, const char *layout, const struct timespec *ts,
                      bool utc);

/* Go's time.RFC3339 layout, the logrus default used by the extension. */
#define GO_RFC3339 "2006-01-02T15:04:05Z07:00"

#endif
