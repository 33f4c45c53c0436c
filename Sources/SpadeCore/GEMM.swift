import CBLAS

/// C = alpha * op(A) * op(B) + beta * C, row-major; the one place cblas_sgemm is called.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// OpenBLAS threading (per process; with MPI, per rank).
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    public static var current: Int { Int(openblas_get_num_threads()) }
    /// The kernel family OpenBLAS selected (e.g. "Haswell", "SkylakeX").
    public static var coreName: String { String(cString: openblas_get_corename()) }
}

import Foundation

extension BLASThreads {
    /// Kernel families OpenBLAS falls back to on a CPU model it does not recognise
    /// (this machine's virtual "Intel Xeon Processor" is detected as Prescott: SSE3
    /// kernels, ~10x slower than the AVX2 ones the CPU supports).
    static let fallbackCores: Set<String> = ["Prescott", "Katmai", "Coppermine", "Northwood", "Banias",
                                             "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Opteron"]

    /// If OPENBLAS_CORETYPE is unset, OpenBLAS chose a fallback kernel and the CPU has
    /// AVX2 + FMA, re-executes this program with OPENBLAS_CORETYPE set (OpenBLAS reads the
    /// variable only when it is loaded): SkylakeX when the CPU has AVX-512 (F, BW, DQ, VL;
    /// about twice the sgemm rate of the AVX2 kernels here), else Haswell.
    /// Returns normally when nothing needs doing. Opt out with SPADE_DIST_KEEP_BLAS_CORE=1.
    /// Must run before MPI_Init.
    public static func reexecWithFastKernelsIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["SPADE_DIST_KEEP_BLAS_CORE"] == nil,
              env["SPADE_DIST_BLAS_REEXEC"] == nil, fallbackCores.contains(coreName),
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              case let has = Set(flags.split(separator: " ").map(String.init)), has.isSuperset(of: ["avx2", "fma"])
        else { return }
        let avx512 = has.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"])
        setenv("OPENBLAS_CORETYPE", avx512 ? "SkylakeX" : "Haswell", 1)
        setenv("SPADE_DIST_BLAS_REEXEC", "1", 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", &cargs)
        // execv only returns on failure: carry on with the slow kernels.
    }
}

/// y = alpha * op(A) * x + beta * y, row-major A (m x n).
@inline(__always)
public func sgemv(trans: Bool = false, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>) {
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda),
                x, 1, beta, y, 1)
}
