// ResNet-50 body (torchvision resnet50 with BatchNorm folded into the convolutions): the stem
// conv 7x7/2 + ReLU + maxpool 3x3/2 pad 1, then layer1..4 of bottlenecks (stride on conv2, the 3x3;
// block 0 has a 1x1 downsample). Returns C2..C5 (torchvision's IntermediateLayerGetter '0'..'3').

import CShim

struct Bottleneck {
    let conv1: Conv2d, conv2: Conv2d, conv3: Conv2d
    let downsample: Conv2d?

    func run(_ x: FeatureMap, _ ws: Workspace) -> FeatureMap {
        // scoped so that `a` is released before conv3 runs (the arena plan follows real lifetimes)
        let b: FeatureMap
        do {
            let a = conv1(x, ws, relu: true)
            b = conv2(a, ws, relu: true)
        }
        let identity = downsample.map { $0(x, ws, relu: false) } ?? x
        return conv3(b, ws, relu: true, residual: identity)
    }
}

struct Backbone {
    let stem: Conv2d
    let layers: [[Bottleneck]]

    init(_ store: TensorStore, source: String) throws {
        stem = try Conv2d(store, "backbone.body.conv1", cin: 3, cout: 64, kernel: 7, stride: 2, pad: 3, source: source)
        var cin = 64
        var layers: [[Bottleneck]] = []
        for (li, blocks) in ModelSpec.resnetBlocks.enumerated() {
            let w = ModelSpec.resnetWidths[li]
            let stride = li == 0 ? 1 : 2
            var layer: [Bottleneck] = []
            for b in 0..<blocks {
                let p = "backbone.body.layer\(li + 1).\(b)"
                let s = b == 0 ? stride : 1
                let c1 = try Conv2d(store, p + ".conv1", cin: cin, cout: w, kernel: 1, source: source)
                let c2 = try Conv2d(store, p + ".conv2", cin: w, cout: w, kernel: 3, stride: s, pad: 1, source: source)
                let c3 = try Conv2d(store, p + ".conv3", cin: w, cout: w * 4, kernel: 1, source: source)
                let ds = b == 0
                    ? try Conv2d(store, p + ".downsample", cin: cin, cout: w * 4, kernel: 1, stride: s, source: source)
                    : nil
                layer.append(Bottleneck(conv1: c1, conv2: c2, conv3: c3, downsample: ds))
                cin = w * 4
            }
            layers.append(layer)
        }
        self.layers = layers
    }

    /// x: the padded, normalised image [3, H, W]. Returns [C2, C3, C4, C5].
    func run(_ x: FeatureMap, _ ws: Workspace) -> [FeatureMap] {
        var owned: FeatureMap? = x
        return run(consuming: &owned, ws)
    }

    /// `run` that releases the input (sets it to nil) once the stem has read it.
    func run(consuming x: inout FeatureMap?, _ ws: Workspace) -> [FeatureMap] {
        var y: FeatureMap
        do {   // the stem output is released once pooled
            let s = stem(x!, ws, relu: true)
            x = nil
            let ph = (s.height + 2 - 3) / 2 + 1, pw = (s.width + 2 - 3) / 2 + 1
            y = ws.map(s.channels, ph, pw)
            em_maxpool2d_f32(s.pointer, Int32(s.channels), Int32(s.height), Int32(s.width), 3, 2, 1, y.pointer)
        }
        var outs: [FeatureMap] = []
        for layer in layers {
            for block in layer { y = block.run(y, ws) }
            outs.append(y)
        }
        return outs
    }
}
