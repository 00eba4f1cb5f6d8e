// Weight-bound layers shared by the stages: convolution, transposed convolution, linear.
// Each binds its tensors from the store by canonical name (ModelSpec) with shape checks.

import CShim

struct Conv2d {
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>
    let cin: Int, cout: Int, kernel: Int, stride: Int, pad: Int
    /// Canonical layer name (activation hooks report the output under it).
    var name = ""

    init(_ store: TensorStore, _ name: String, cin: Int, cout: Int, kernel: Int, stride: Int = 1,
         pad: Int = 0, source: String) throws {
        self.name = name
        weight = try store.floatTensor(name + ".weight", shape: [cout, cin, kernel, kernel], source: source).floats
        bias = try store.floatTensor(name + ".bias", shape: [cout], source: source).floats
        self.cin = cin; self.cout = cout; self.kernel = kernel; self.stride = stride; self.pad = pad
    }

    init(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, cin: Int, cout: Int, kernel: Int,
         stride: Int, pad: Int) {
        self.weight = weight; self.bias = bias
        self.cin = cin; self.cout = cout; self.kernel = kernel; self.stride = stride; self.pad = pad
    }

    func outSize(_ h: Int, _ w: Int) -> (Int, Int) {
        ((h + 2 * pad - kernel) / stride + 1, (w + 2 * pad - kernel) / stride + 1)
    }

    /// out = act(conv(x) + bias (+ residual)).
    func callAsFunction(_ x: FeatureMap, _ ws: Workspace, relu: Bool, residual: FeatureMap? = nil) -> FeatureMap {
        let (oh, ow) = outSize(x.height, x.width)
        let out = ws.map(cout, oh, ow)
        run(x.pointer, x.height, x.width, out: out.pointer, ws, relu: relu, residual: residual?.pointer)
        return out
    }

    func run(_ input: UnsafePointer<Float>, _ h: Int, _ w: Int, out: UnsafeMutablePointer<Float>,
             _ ws: Workspace, relu: Bool, residual: UnsafePointer<Float>? = nil) {
        let bytes = em_conv2d_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout), Int32(kernel),
                                                Int32(kernel), Int32(stride), Int32(pad))
        let scratch = ws.scratch(Int(bytes))
        em_conv2d_f32(input, Int32(cin), Int32(h), Int32(w), weight, bias, Int32(cout), Int32(kernel),
                      Int32(kernel), Int32(stride), Int32(pad), residual, relu ? 1 : 0, out, scratch)
        if let hook = ws.hook {
            let (oh, ow) = outSize(h, w)
            hook.activation(name, out, cout * oh * ow)
        }
    }
}

/// torch ConvTranspose2d(cin, cout, 2, stride 2).
struct Deconv2x2 {
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>
    let cin: Int, cout: Int
    let name: String

    init(_ store: TensorStore, _ name: String, cin: Int, cout: Int, source: String) throws {
        self.name = name
        weight = try store.floatTensor(name + ".weight", shape: [cin, cout, 2, 2], source: source).floats
        bias = try store.floatTensor(name + ".bias", shape: [cout], source: source).floats
        self.cin = cin; self.cout = cout
    }

    /// reserveWidth: the largest `w` this call site passes (planning runs reserve its scratch).
    func run(_ input: UnsafePointer<Float>, _ h: Int, _ w: Int, out: UnsafeMutablePointer<Float>,
             _ ws: Workspace, relu: Bool, reserveWidth: Int = 0) {
        let bytes = em_deconv2x2s2_f32_scratch_bytes(Int32(cin), Int32(h), Int32(w), Int32(cout))
        let bound = em_deconv2x2s2_f32_scratch_bytes(Int32(cin), Int32(h), Int32(max(w, reserveWidth)), Int32(cout))
        em_deconv2x2s2_f32(input, Int32(cin), Int32(h), Int32(w), weight, bias, Int32(cout), relu ? 1 : 0,
                           out, ws.scratch(Int(bytes), reserve: Int(bound)))
        ws.hook?.activation(name, out, cout * 4 * h * w)
    }
}

/// torch Linear: out[n, outF] = in[n, inF] * W^T + b.
struct Linear {
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>
    let inF: Int, outF: Int
    let name: String

    init(_ store: TensorStore, _ name: String, inF: Int, outF: Int, source: String) throws {
        self.name = name
        weight = try store.floatTensor(name + ".weight", shape: [outF, inF], source: source).floats
        bias = try store.floatTensor(name + ".bias", shape: [outF], source: source).floats
        self.inF = inF; self.outF = outF
    }

    /// An unbound placeholder (never run).
    init(name: String) {
        self.name = name; inF = 0; outF = 0
        weight = UnsafePointer(Linear.nothing); bias = UnsafePointer(Linear.nothing)
    }
    private static let nothing = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    func run(_ input: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, relu: Bool,
             hook: ActivationHook? = nil) {
        if rows == 0 || inF == 0 { return }
        em_linear_f32(input, Int32(rows), Int32(inF), weight, bias, Int32(outF), relu ? 1 : 0, out)
        hook?.activation(name, out, rows * outF)
    }
}
