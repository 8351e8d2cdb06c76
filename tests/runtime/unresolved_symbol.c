/* A shared library that dlopen(RTLD_NOW) refuses: it calls a function no
 * library defines. The loader test checks that dlerror's message reaches
 * kiln_last_error. */
void kiln_test_symbol_nobody_defines(void);

void kiln_test_call_it(void) { kiln_test_symbol_nobody_defines(); }
