import SpadeCore

/// Conv2d layer (optionally spectral-normed) with NVlabs state names:
/// `weight`/`bias`, or `weight_orig`/`bias` + buffers `weight_u`, `weight_v`.
///
/// A conv can also stack several same-input "heads" (SPADE's mlp_gamma and mlp_beta):
/// their weights are registered consecutively, so together they form one
/// (sum of Cout, K) matrix and one GEMM serves all heads.
public final class Conv2d {
    public let cin: Int, cout: Int, kernel: Int, stride: Int, pad: Int
    public let spectral: Bool
    /// Forced convolution algorithm (nil: the workspace's choice).
    public let algorithm: ConvAlgorithm?
    /// Module path, e.g. `head_0.conv_0` (for benchmarks and messages).
    public let name: String
    let state: ModelState
    /// One weight per head, contiguous in the parameter buffer.
    public let weights: [ParamRef]
    public let biases: [ParamRef]
    let u: BufferRef?, v: BufferRef?

    public var weight: ParamRef { weights[0] }
    public var bias: ParamRef? { biases.first }

    // Saved by forward for backward.
    public private(set) var input: Tensor?
    private var sigma: Float = 1
    /// Forward's Winograd-transformed input (arena memory), reused by backward.
    private var winogradInput: UnsafeMutablePointer<Float>?

    public init(_ state: ModelState, _ prefix: String, cin: Int, cout: Int, kernel: Int,
                stride: Int = 1, pad: Int = 0, bias: Bool = true, spectral: Bool = false,
                algorithm: ConvAlgorithm? = nil) {
        self.state = state
        self.algorithm = algorithm
        self.cin = cin; self.cout = cout; self.kernel = kernel; self.stride = stride; self.pad = pad
        self.spectral = spectral
        name = prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix
        biases = bias ? [state.addParameter(prefix + "bias", [cout])] : []
        weights = [state.addParameter(prefix + (spectral ? "weight_orig" : "weight"), [cout, cin, kernel, kernel])]
        if spectral {
            u = state.addBuffer(prefix + "weight_u", [cout], initial: 0)
            v = state.addBuffer(prefix + "weight_v", [cin * kernel * kernel], initial: 0)
        } else {
            u = nil; v = nil
        }
    }

    /// Heads named `prefixes[i]` + weight/bias, each (coutEach, cin, k, k), sharing one input;
    /// output channels are the heads in order.
    public init(_ state: ModelState, heads prefixes: [String], cin: Int, coutEach: Int, kernel: Int, pad: Int) {
        self.state = state
        self.cin = cin; cout = coutEach * prefixes.count; self.kernel = kernel; stride = 1; self.pad = pad
        spectral = false
        algorithm = nil
        u = nil; v = nil
        name = prefixes.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }.joined(separator: "+")
        weights = prefixes.map { state.addParameter($0 + "weight", [coutEach, cin, kernel, kernel]) }
        biases = prefixes.map { state.addParameter($0 + "bias", [coutEach]) }
    }

    public func geometry(h: Int, w: Int) -> ConvGeometry {
        ConvGeometry(cin: cin, kernel: kernel, stride: stride, pad: pad, h: h, w: w)
    }

    var weightCount: Int { cout * cin * kernel * kernel }

    public func forward(_ x: Tensor, mode: Mode, _ ctx: Context) -> Tensor {
        let g = geometry(h: x.h, w: x.w)
        if spectral {
            sigma = SpectralNorm.forward(weightOrig: state.value(weight), rows: cout, cols: cin * kernel * kernel,
                                         u: state.buffer(u!), v: state.buffer(v!), powerIteration: mode == .train,
                                         scratch: ctx.arena.floats(cout))
        }
        input = x
        winogradInput = mode == .train
            ? winogradSavedInputCount(cout: cout, geometry: g, samples: x.n, workspace: ctx.workspace, algorithm: algorithm)
                .map { ctx.arena.floats($0) }
            : nil
        let y = ctx.arena.tensor(x.n, cout, g.outH, g.outW)
        convForward(x: x, weight: state.value(weight), weightScale: spectral ? 1 / sigma : 1,
                    bias: bias.map { UnsafePointer(state.value($0)) }, cout: cout, geometry: g, y: y, workspace: ctx.workspace,
                    algorithm: algorithm, winogradInput: winogradInput)
        return y
    }

    /// Adds parameter gradients (if `parameterGradients`; the step's first write overwrites,
    /// see ModelState.beginGradients) and adds dL/dx into `dx` (if given).
    public func backward(_ dy: Tensor, dx: Tensor?, parameterGradients: Bool, _ ctx: Context) {
        guard let x = input else { preconditionFailure("backward before forward") }
        let g = geometry(h: x.h, w: x.w)
        var dW: UnsafeMutablePointer<Float>? = nil
        let accumulate = state.hasGradient(weight)   // weights and biases of a conv are written together
        if parameterGradients {
            // spectral: dL/d(W / sigma) first, then through sigma into weight_orig's gradient
            dW = !spectral ? state.grad(weight) : accumulate ? ctx.arena.zeros(weightCount) : ctx.arena.floats(weightCount)
        }
        convBackward(x: x, weight: state.value(weight), weightScale: spectral ? 1 / sigma : 1, cout: cout, geometry: g,
                     dy: dy, dweight: dW, dbias: parameterGradients ? bias.map { state.grad($0) } : nil, dx: dx,
                     workspace: ctx.workspace, algorithm: algorithm, winogradInput: winogradInput,
                     accumulateParameterGradients: accumulate)
        guard parameterGradients else { return }
        if spectral {
            SpectralNorm.backward(gradNormalized: dW!, weightOrig: state.value(weight), rows: cout,
                                  cols: cin * kernel * kernel, u: state.buffer(u!), v: state.buffer(v!),
                                  sigma: sigma, accumulate: accumulate, gradOrig: state.grad(weight))
        }
        for p in weights + biases {
            state.markGradientWritten(p)
            ctx.gradientReady(p, state)
        }
        ctx.poll()
    }
}
