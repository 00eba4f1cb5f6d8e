// torchvision transform.postprocess: boxes rescaled to the original image with float32 ratios
// (orig / resized per axis), then paste_masks_in_image; masks thresholded at 0.5 over the
// box-sized region they cover, never as full-image planes. detect streams them (MaskPaster):
// each mask is pasted into one reusable buffer and RLE-encoded at once, so the output stage holds
// one region bitmap plus the RLEs, never N bitmaps.

import CShim

enum Paste {
    /// Boxes (resized coordinates, flat) -> original-image boxes (flat).
    static func rescale(_ boxes: [Float], sizes s: ImageSizes) -> [Float] {
        let rh = s.ratioHeight, rw = s.ratioWidth
        var out = boxes
        for i in stride(from: 0, to: boxes.count, by: 4) {
            out[i] = boxes[i] * rw; out[i + 1] = boxes[i + 1] * rh
            out[i + 2] = boxes[i + 2] * rw; out[i + 3] = boxes[i + 3] * rh
        }
        return out
    }

    /// One 28x28 probability map pasted for an original-image box.
    static func mask(_ probs: UnsafePointer<Float>, size m: Int, box: [Float], imageHeight h: Int,
                     imageWidth w: Int, threshold: Float = 0.5) -> MaskRegion {
        var x0: Int32 = 0, y0: Int32 = 0, rw: Int32 = 0, rh: Int32 = 0
        box.withUnsafeBufferPointer { b in
            em_paste_mask_region(b.baseAddress, Int32(m), Int32(h), Int32(w), &x0, &y0, &rw, &rh)
        }
        var bits = [UInt8](repeating: 0, count: Int(rw) * Int(rh))
        if rw > 0 && rh > 0 {
            box.withUnsafeBufferPointer { b in
                bits.withUnsafeMutableBufferPointer { o in
                    em_paste_mask_f32(probs, Int32(m), b.baseAddress, Int32(h), Int32(w), threshold, o.baseAddress)
                }
            }
        }
        return MaskRegion(x0: Int(x0), y0: Int(y0), width: Int(rw), height: Int(rh), imageWidth: w,
                          imageHeight: h, bits: bits)
    }

    /// The clipped image region (x0, y0, width, height) the mask of `box` covers.
    static func region(box: UnsafePointer<Float>, size m: Int, imageHeight h: Int,
                       imageWidth w: Int) -> (x0: Int, y0: Int, width: Int, height: Int) {
        var x0: Int32 = 0, y0: Int32 = 0, rw: Int32 = 0, rh: Int32 = 0
        em_paste_mask_region(box, Int32(m), Int32(h), Int32(w), &x0, &y0, &rw, &rh)
        return (Int(x0), Int(y0), Int(rw), Int(rh))
    }
}

/// Pastes masks one at a time into one reusable region buffer (sized to the largest region of
/// the boxes it was made for) and RLE-encodes each at once. Same numerics as `Paste.mask`.
struct MaskPaster {
    let size: Int
    let imageHeight: Int
    let imageWidth: Int
    let threshold: Float
    private var scratch: [UInt8]

    /// `boxes`: flat (x1, y1, x2, y2) in original image coordinates, the masks to come.
    init(boxes: [Float], size m: Int, imageHeight h: Int, imageWidth w: Int, threshold: Float = 0.5) {
        size = m; imageHeight = h; imageWidth = w; self.threshold = threshold
        var largest = 0
        boxes.withUnsafeBufferPointer { b in
            var i = 0
            while i + 4 <= b.count {
                let r = Paste.region(box: b.baseAddress! + i, size: m, imageHeight: h, imageWidth: w)
                largest = max(largest, r.width * r.height)
                i += 4
            }
        }
        scratch = [UInt8](repeating: 0, count: largest)
    }

    /// Bytes of the region buffer.
    var scratchBytes: Int { scratch.count }

    /// The RLE of one 28x28 probability map pasted for `box` (4 floats, original image coordinates).
    mutating func rle(_ probs: UnsafePointer<Float>, box: UnsafePointer<Float>) -> RLE {
        let (h, w, m, t) = (imageHeight, imageWidth, size, threshold)
        let r = Paste.region(box: box, size: m, imageHeight: h, imageWidth: w)
        let n = r.width * r.height
        if n > scratch.count { scratch = [UInt8](repeating: 0, count: n) }  // a box it was not made for
        return scratch.withUnsafeMutableBufferPointer { buf in
            if n > 0 {
                em_paste_mask_f32(probs, Int32(m), box, Int32(h), Int32(w), t, buf.baseAddress)
            }
            return RLE(regionBits: UnsafeBufferPointer(start: buf.baseAddress, count: n), x0: r.x0, y0: r.y0,
                       width: r.width, height: r.height, imageWidth: w, imageHeight: h)
        }
    }

    mutating func rle(_ probs: UnsafePointer<Float>, box: [Float]) -> RLE {
        box.withUnsafeBufferPointer { rle(probs, box: $0.baseAddress!) }
    }
}

extension MaskPaster {
    /// The RLEs of a detect run's masks: `slots[i]` is the row of detection i in `probs` (nil: no
    /// mask), `boxes` the flat original-image boxes of all detections. Pasted and encoded on the
    /// kernel threads (em_run_tasks): the tasks take detections one at a time (em_take_next),
    /// each task with its own MaskPaster, every detection through the same code as one at a time,
    /// so the RLEs do not depend on the threads (the paste's row split then stays on the task's thread).
    static func rles(_ probs: UnsafePointer<Float>, boxes: [Float], slots: [Int?], size m: Int,
                     imageHeight h: Int, imageWidth w: Int) -> [RLE?] {
        var picked: [Float] = []
        for (i, s) in slots.enumerated() where s != nil { picked += boxes[(4 * i)..<(4 * i + 4)] }
        let masks = picked.count / 4
        var out = [RLE?](repeating: nil, count: slots.count)
        if masks == 0 { return out }
        let tasks = max(1, min(Int(em_num_threads()), masks))
        out.withUnsafeMutableBufferPointer { o in
            boxes.withUnsafeBufferPointer { b in
                let job = PasteJob(probs: probs, boxes: b.baseAddress!, slots: slots, picked: picked, size: m,
                                   imageHeight: h, imageWidth: w, tasks: tasks, out: o)
                let ctx = Unmanaged.passRetained(job).toOpaque()
                em_run_tasks(Int32(tasks), { ctx, t in
                    Unmanaged<PasteJob>.fromOpaque(ctx!).takeUnretainedValue().run(Int(t))
                }, ctx)
                Unmanaged<PasteJob>.fromOpaque(ctx).release()
            }
        }
        return out
    }
}

/// One em_run_tasks job of MaskPaster.rles: each task pastes the detections it takes into their
/// elements of `out`.
private final class PasteJob {
    let probs: UnsafePointer<Float>
    let boxes: UnsafePointer<Float>
    let slots: [Int?]
    let picked: [Float]
    let m: Int, h: Int, w: Int, tasks: Int
    let out: UnsafeMutableBufferPointer<RLE?>

    init(probs: UnsafePointer<Float>, boxes: UnsafePointer<Float>, slots: [Int?], picked: [Float], size m: Int,
         imageHeight h: Int, imageWidth w: Int, tasks: Int, out: UnsafeMutableBufferPointer<RLE?>) {
        self.probs = probs; self.boxes = boxes; self.slots = slots; self.picked = picked
        self.m = m; self.h = h; self.w = w; self.tasks = tasks; self.out = out
        next.initialize(to: 0)
    }

    /// The next detection to paste, shared by the tasks (masks differ in size: taken one at a
    /// time, no task waits for another's larger share).
    private let next = UnsafeMutablePointer<Int32>.allocate(capacity: 1)

    deinit { next.deallocate() }

    func run(_ t: Int) {
        var paster = MaskPaster(boxes: picked, size: m, imageHeight: h, imageWidth: w)
        while true {
            let i = Int(em_take_next(next))
            if i >= slots.count { break }
            if let s = slots[i] { out[i] = paster.rle(probs + s * m * m, box: boxes + 4 * i) }
        }
    }
}
