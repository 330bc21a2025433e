// A small C face of Open MPI for Swift. mpi.h spells its handles as macros over library globals, which Swift cannot
// import, and linking libmpi would make the package need MPI to build; so the library is opened at run time
// (dlopen) and its functions and predefined handles are looked up by name. Every function returns an MPI error
// code (0 on success) unless it says otherwise.
#ifndef PEFT_MPI_SHIM_H
#define PEFT_MPI_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An outstanding non-blocking operation (an MPI_Request).
typedef void *peft_mpi_request;

/// Opens the MPI library at `path` (NULL: "libmpi.so.40", then "libmpi.so") with its symbols global (Open MPI's
/// components need that) and resolves what the shim uses. Returns 0, or -1 with a message in `error`.
int peft_mpi_load(const char *path, char *error, size_t capacity);
/// Whether `peft_mpi_load` has succeeded.
int peft_mpi_loaded(void);

/// MPI_Init, then errors on MPI_COMM_WORLD return codes instead of aborting, so the caller can name them.
int peft_mpi_init(void);
int peft_mpi_finalize(void);
/// MPI_Abort on MPI_COMM_WORLD: ends every process of the job.
int peft_mpi_abort(int code);
int peft_mpi_rank(int *rank);
int peft_mpi_size(int *size);
/// MPI_Error_string into `buffer` (at least 256 bytes).
void peft_mpi_error_string(int code, char *buffer, size_t capacity);
/// MPI_Get_library_version into `buffer` (at least 256 bytes).
int peft_mpi_library_version(char *buffer, size_t capacity);

/// In-place sum over all ranks of `count` floats / doubles, started without waiting.
int peft_mpi_iallreduce_sum_float(float *values, int count, peft_mpi_request *request);
int peft_mpi_iallreduce_sum_double(double *values, int count, peft_mpi_request *request);
/// In-place maximum over all ranks of `count` doubles, started without waiting.
int peft_mpi_iallreduce_max_double(double *values, int count, peft_mpi_request *request);
/// `count` bytes from `root` to every rank, started without waiting.
int peft_mpi_ibcast_bytes(void *bytes, int count, int root, peft_mpi_request *request);
/// One 64-bit integer to / from one rank with `tag`, started without waiting.
int peft_mpi_isend_int64(const int64_t *value, int peer, int tag, peft_mpi_request *request);
int peft_mpi_irecv_int64(int64_t *value, int peer, int tag, peft_mpi_request *request);
/// Whether `request` has finished (`done` 1 or 0); a finished request is released.
int peft_mpi_test(peft_mpi_request *request, int *done);

#ifdef __cplusplus
}
#endif

#endif
