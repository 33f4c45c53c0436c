#include <mpi.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

// OpenMPI's handles are macros over addresses of global objects; Swift cannot
// import them, so each one the project uses gets an inline accessor here.
static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_op_min(void) { return MPI_MIN; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *cmpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline int cmpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int cmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }

// Number of CPUs this process may run on (sched_getaffinity), or -1.
// mpirun binds ranks to cores by default for np <= 2, so this can be 1
// even on a many-core node.
static inline int cmpi_affinity_cpu_count(void) {
#ifdef __linux__
    // Raw syscall: glibc's sched_getaffinity/CPU_COUNT need _GNU_SOURCE,
    // which a module header cannot rely on.
    unsigned long mask[64] = {0};  // 4096 CPUs
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    if (bytes <= 0) return -1;
    int count = 0;
    for (long i = 0; i < bytes / (long)sizeof(unsigned long); i++)
        count += __builtin_popcountl(mask[i]);
    return count;
#else
    return -1;
#endif
}

static inline int cmpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info cmpi_info_null(void) { return MPI_INFO_NULL; }
static inline int cmpi_mode_nocheck(void) { return MPI_MODE_NOCHECK; }

// Flags in node-shared memory (one writer each, polled by the other ranks): the writer's
// earlier stores are visible to a reader that sees the flag's new value.
static inline void cmpi_flag_store(int64_t *flag, int64_t value) {
    atomic_store_explicit((_Atomic int64_t *)flag, value, memory_order_release);
}
static inline int64_t cmpi_flag_load(const int64_t *flag) {
    return atomic_load_explicit((_Atomic int64_t *)flag, memory_order_acquire);
}
static inline void cmpi_yield(void) { sched_yield(); }
