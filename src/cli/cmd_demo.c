/* PLACEHOLDER: replaced by the owner of `cnflow demo` (work in progress). */
#include "cli.h"
int cmd_demo(int argc, char **argv) {
  return cnf_error_set(CNF_ERR_STATE, "'cnflow demo' is not built yet");
}
