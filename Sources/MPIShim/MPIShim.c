// See include/MPIShim.h. The handle layout is Open MPI's (MPI_Comm, MPI_Datatype, MPI_Op and MPI_Request are
// pointers; the predefined ones are the addresses of library globals such as ompi_mpi_comm_world); other MPI
// libraries are refused by name at load time.
#include "MPIShim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void *handle;

static struct {
    int loaded;
    int (*init)(int *, char ***);
    int (*initialized)(int *);
    int (*finalize)(void);
    int (*abort_)(handle, int);
    int (*comm_rank)(handle, int *);
    int (*comm_size)(handle, int *);
    int (*comm_set_errhandler)(handle, handle);
    int (*error_string)(int, char *, int *);
    int (*library_version)(char *, int *);
    int (*iallreduce)(const void *, void *, int, handle, handle, handle, handle *);
    int (*ibcast)(void *, int, handle, int, handle, handle *);
    int (*isend)(const void *, int, handle, int, int, handle, handle *);
    int (*irecv)(void *, int, handle, int, int, handle, handle *);
    int (*test)(handle *, int *, void *);
    handle comm_world, float_type, double_type, byte_type, int64_type, op_sum, op_max, errors_return;
} mpi;

// Open MPI's MPI_IN_PLACE and MPI_STATUS_IGNORE.
#define SHIM_IN_PLACE ((void *)1)
#define SHIM_STATUS_IGNORE ((void *)0)

static int resolve(void *library, const char *name, void **slot, char *error, size_t capacity) {
    *slot = dlsym(library, name);
    if (*slot == NULL) {
        snprintf(error, capacity, "the MPI library has no symbol '%s' (only Open MPI 4 or later is supported)", name);
        return -1;
    }
    return 0;
}

int peft_mpi_load(const char *path, char *error, size_t capacity) {
    if (mpi.loaded) return 0;
    const char *candidates[] = {path, "libmpi.so.40", "libmpi.so"};
    void *library = NULL;
    const char *failure = "no candidate";
    for (int i = path ? 0 : 1; i < 3 && library == NULL; i++) {
        library = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (library == NULL) failure = dlerror();
        if (path) break;
    }
    if (library == NULL) {
        snprintf(error, capacity, "cannot open the MPI library %s: %s", path ? path : "libmpi.so.40", failure ? failure : "unknown");
        return -1;
    }
    struct { const char *name; void **slot; } table[] = {
        {"MPI_Init", (void **)&mpi.init},
        {"MPI_Initialized", (void **)&mpi.initialized},
        {"MPI_Finalize", (void **)&mpi.finalize},
        {"MPI_Abort", (void **)&mpi.abort_},
        {"MPI_Comm_rank", (void **)&mpi.comm_rank},
        {"MPI_Comm_size", (void **)&mpi.comm_size},
        {"MPI_Comm_set_errhandler", (void **)&mpi.comm_set_errhandler},
        {"MPI_Error_string", (void **)&mpi.error_string},
        {"MPI_Get_library_version", (void **)&mpi.library_version},
        {"MPI_Iallreduce", (void **)&mpi.iallreduce},
        {"MPI_Ibcast", (void **)&mpi.ibcast},
        {"MPI_Isend", (void **)&mpi.isend},
        {"MPI_Irecv", (void **)&mpi.irecv},
        {"MPI_Test", (void **)&mpi.test},
        {"ompi_mpi_comm_world", &mpi.comm_world},
        {"ompi_mpi_float", &mpi.float_type},
        {"ompi_mpi_double", &mpi.double_type},
        {"ompi_mpi_byte", &mpi.byte_type},
        {"ompi_mpi_int64_t", &mpi.int64_type},
        {"ompi_mpi_op_sum", &mpi.op_sum},
        {"ompi_mpi_op_max", &mpi.op_max},
        {"ompi_mpi_errors_return", &mpi.errors_return},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (resolve(library, table[i].name, table[i].slot, error, capacity) != 0) {
            dlclose(library);
            memset(&mpi, 0, sizeof(mpi));
            return -1;
        }
    }
    mpi.loaded = 1;
    return 0;
}

int peft_mpi_loaded(void) { return mpi.loaded; }

int peft_mpi_init(void) {
    int already = 0;
    int code = mpi.initialized(&already);
    if (code != 0) return code;
    if (!already) {
        code = mpi.init(NULL, NULL);
        if (code != 0) return code;
    }
    return mpi.comm_set_errhandler(mpi.comm_world, mpi.errors_return);
}

int peft_mpi_finalize(void) { return mpi.finalize(); }
int peft_mpi_abort(int code) { return mpi.abort_(mpi.comm_world, code); }
int peft_mpi_rank(int *rank) { return mpi.comm_rank(mpi.comm_world, rank); }
int peft_mpi_size(int *size) { return mpi.comm_size(mpi.comm_world, size); }

void peft_mpi_error_string(int code, char *buffer, size_t capacity) {
    char text[1024];  // MPI_MAX_ERROR_STRING is 256 in Open MPI
    int length = 0;
    if (!mpi.loaded || mpi.error_string(code, text, &length) != 0) {
        snprintf(buffer, capacity, "MPI error %d", code);
        return;
    }
    if (length < 0) length = 0;
    if (length > (int)sizeof(text) - 1) length = (int)sizeof(text) - 1;
    text[length] = 0;
    snprintf(buffer, capacity, "%s", text);
}

int peft_mpi_library_version(char *buffer, size_t capacity) {
    char text[8192];  // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI 4
    int length = 0;
    int code = mpi.library_version(text, &length);
    if (code != 0) return code;
    if (length < 0) length = 0;
    if (length > (int)sizeof(text) - 1) length = (int)sizeof(text) - 1;
    text[length] = 0;
    snprintf(buffer, capacity, "%s", text);
    return 0;
}

int peft_mpi_iallreduce_sum_float(float *values, int count, peft_mpi_request *request) {
    return mpi.iallreduce(SHIM_IN_PLACE, values, count, mpi.float_type, mpi.op_sum, mpi.comm_world, request);
}

int peft_mpi_iallreduce_sum_double(double *values, int count, peft_mpi_request *request) {
    return mpi.iallreduce(SHIM_IN_PLACE, values, count, mpi.double_type, mpi.op_sum, mpi.comm_world, request);
}

int peft_mpi_iallreduce_max_double(double *values, int count, peft_mpi_request *request) {
    return mpi.iallreduce(SHIM_IN_PLACE, values, count, mpi.double_type, mpi.op_max, mpi.comm_world, request);
}

int peft_mpi_ibcast_bytes(void *bytes, int count, int root, peft_mpi_request *request) {
    return mpi.ibcast(bytes, count, mpi.byte_type, root, mpi.comm_world, request);
}

int peft_mpi_isend_int64(const int64_t *value, int peer, int tag, peft_mpi_request *request) {
    return mpi.isend(value, 1, mpi.int64_type, peer, tag, mpi.comm_world, request);
}

int peft_mpi_irecv_int64(int64_t *value, int peer, int tag, peft_mpi_request *request) {
    return mpi.irecv(value, 1, mpi.int64_type, peer, tag, mpi.comm_world, request);
}

int peft_mpi_test(peft_mpi_request *request, int *done) {
    return mpi.test(request, done, SHIM_STATUS_IGNORE);
}
