/* A configuration loader that dereferences a missing entry: a NULL read three calls
 * below main. Built -O0 (plain), -no-pie, and -O2 with a separate debug file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    const char *key;
    const char *value;
    struct entry *next;
};

static struct entry *table;

__attribute__((noinline)) static const struct entry *find_entry(const char *key)
{
    for (const struct entry *e = table; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

__attribute__((noinline)) static size_t value_length(const struct entry *e)
{
    return strlen(e->value); /* e is NULL for a missing key: the crash */
}

__attribute__((noinline)) size_t load_entry(const char *key)
{
    const struct entry *e = find_entry(key);
    return value_length(e);
}

__attribute__((noinline)) size_t parse_config(int argc, char **argv)
{
    static struct entry host = { "host", "localhost", NULL };
    table = &host;
    size_t total = load_entry("host");
    total += load_entry(argc > 1 ? argv[1] : "port");
    return total;
}

int main(int argc, char **argv)
{
    size_t n = parse_config(argc, argv);
    printf("%zu\n", n);
    return 0;
}
