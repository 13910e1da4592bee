/* Channel -> partition against the shared vectors (tests/vectors/partition.tsv),
 * which the SQL test checks holdfast.partition_for() against too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "holdfast/partition.h"

int main(void)
{
    FILE *f = fopen("tests/vectors/partition.tsv", "r");
    CHECK(f != NULL);
    if (!f)
        CHECK_MAIN_END();
    char line[512];
    int vectors = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char *channel = strtok(line, "\t");
        char *hash = strtok(NULL, "\t");
        char *count = strtok(NULL, "\t");
        char *partition = strtok(NULL, "\t\n");
        CHECK(channel && hash && count && partition);
        if (!partition)
            continue;
        CHECK_INT_EQ(hf_fnv1a32(channel, strlen(channel)), strtoull(hash, NULL, 10));
        CHECK_INT_EQ(hf_partition_for(channel, strlen(channel), atoi(count)), atoi(partition));
        vectors++;
    }
    fclose(f);
    CHECK(vectors >= 100);
    /* Known FNV-1a values: the empty string is the offset basis. */
    CHECK_INT_EQ(hf_fnv1a32("", 0), 2166136261u);
    CHECK_INT_EQ(hf_fnv1a32("a", 1), 0xe40c292cu);
    CHECK_MAIN_END();
}
