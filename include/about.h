/* What the program says about itself, without touching the network or the environment's
 * configuration: --version (ours and the libraries' versions, and in the layer the Debian source
 * versions it was built from) and --help (a short usage naming the variables). */
#ifndef PLE_ABOUT_H
#define PLE_ABOUT_H

#include <stdio.h>

#include "version.h"

#define ABOUT_NAME "pyroscope-lambda-extension"

/* Handles the command line: returns -1 when the extension should run (no arguments), else the
 * exit code after printing: 0 for --version / -V and --help / -h, 2 for anything else (usage on
 * stderr). */
int about_main(int argc, char **argv, FILE *out, FILE *err);

#endif
