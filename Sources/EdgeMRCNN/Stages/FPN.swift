// Feature pyramid (torchvision ops/feature_pyramid_network.py): 1x1 lateral ("inner") convs,
// top-down nearest upsampling + add, 3x3 output ("layer") convs, and the extra 'pool' level
// P6 = max_pool2d(P5, kernel 1, stride 2).

import CShim

struct FPN {
    let inner: [Conv2d]
    let layer: [Conv2d]

    init(_ store: TensorStore, source: String) throws {
        let c = ModelSpec.fpnChannels
        inner = try [256, 512, 1024, 2048].enumerated().map { i, cin in
            try Conv2d(store, "backbone.fpn.inner_blocks.\(i)", cin: cin, cout: c, kernel: 1, source: source)
        }
        layer = try (0..<4).map { i in
            try Conv2d(store, "backbone.fpn.layer_blocks.\(i)", cin: c, cout: c, kernel: 3, pad: 1, source: source)
        }
    }

    /// [C2..C5] -> [P2, P3, P4, P5, P6] (torchvision keys '0', '1', '2', '3', 'pool').
    func run(_ cs: [FeatureMap], _ ws: Workspace) -> [FeatureMap] {
        var owned = cs.map { Optional($0) }
        return run(consuming: &owned, ws)
    }

    /// `run` that releases each C_i (sets it to nil) as soon as its lateral conv has read it, so
    /// that C2..C5 are not all alive while P2..P6 are made (pass the only references).
    func run(consuming cs: inout [FeatureMap?], _ ws: Workspace) -> [FeatureMap] {
        var results = [FeatureMap?](repeating: nil, count: 5)
        var last = inner[3](cs[3]!, ws, relu: false)
        cs[3] = nil
        results[3] = layer[3](last, ws, relu: false)
        for i in stride(from: 2, through: 0, by: -1) {
            let lateral = inner[i](cs[i]!, ws, relu: false)
            cs[i] = nil
            em_upsample_nearest_add_f32(last.pointer, Int32(last.channels), Int32(last.height), Int32(last.width),
                                        lateral.pointer, Int32(lateral.height), Int32(lateral.width))
            ws.hook?.activation("backbone.fpn.merge.\(i)", lateral.pointer, lateral.count)
            last = lateral
            results[i] = layer[i](lateral, ws, relu: false)
        }
        let p5 = results[3]!
        let p6 = ws.map(p5.channels, (p5.height - 1) / 2 + 1, (p5.width - 1) / 2 + 1)
        em_maxpool2d_f32(p5.pointer, Int32(p5.channels), Int32(p5.height), Int32(p5.width), 1, 2, 0, p6.pointer)
        results[4] = p6
        return results.map { $0! }
    }
}
