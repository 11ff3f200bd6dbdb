/* The pare command (placeholder until the subcommands land in this change). */
#include <stdio.h>

#include "pare.h"

int main(void)
{
    printf("pare %s\n", pare_version());
    return 0;
}
