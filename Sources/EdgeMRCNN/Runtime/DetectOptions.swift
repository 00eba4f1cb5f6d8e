// Work only where it is wanted (issue 12): which classes are kept and which detections get a
// mask, decided between the box head (roi_heads) and the mask head, so that the mask head, the
// paste and the RLE encoding run only for the detections that need them.
//   --classes-only a,b   keep only these classes (the others are dropped before the mask head)
//   --mask-thresh X      masks only for detections scoring >= X; the others keep box and score
//   --no-masks           no masks at all (boxes, labels and scores only)
// A detection without a mask has `mask == nil`: no "segmentation" in the results JSON, drawn
// box-only in overlays.

public struct DetectOptions: Equatable {
    /// Labels kept; nil keeps every class.
    public var classesOnly: Set<Int>?
    /// The lowest score that still gets a mask; nil: every detection gets one.
    public var maskThresh: Float?
    /// false: no detection gets a mask.
    public var masks: Bool

    public init(classesOnly: Set<Int>? = nil, maskThresh: Float? = nil, masks: Bool = true) {
        self.classesOnly = classesOnly; self.maskThresh = maskThresh; self.masks = masks
    }

    /// Everything: every class, a mask for every detection (torchvision's behaviour).
    public static let all = DetectOptions()

    /// The labels named by a comma-separated list: class names of the model (exactly as
    /// `classNames` spells them, e.g. "person,dog") or label numbers. Throws a one-line error
    /// naming an unknown class and listing the known ones; the background is refused.
    public static func labels(classList: String, classNames: [String]) throws -> Set<Int> {
        var out = Set<Int>()
        let parts = classList.split(separator: ",", omittingEmptySubsequences: false).map { trim(String($0)) }
        for p in parts {
            if p.isEmpty { throw EdgeError("--classes-only: empty class name in '\(classList)'") }
            if let i = classNames.firstIndex(of: p) {
                if i == 0 { throw EdgeError("--classes-only: '\(p)' is the background, not a class that can be detected") }
                out.insert(i)
            } else if let i = Int(p), i >= 1, i < max(classNames.count, 2) {
                out.insert(i)
            } else {
                let known = classNames.dropFirst().filter { !$0.isEmpty && $0 != "N/A" }
                let shown = known.prefix(20).joined(separator: ", ") + (known.count > 20 ? ", ..." : "")
                throw EdgeError("--classes-only: the model has no class '\(p)' (its classes: \(shown))")
            }
        }
        return out
    }

    private static func trim(_ s: String) -> String {
        var t = Substring(s)
        while let c = t.first, c == " " || c == "\t" { t = t.dropFirst() }
        while let c = t.last, c == " " || c == "\t" { t = t.dropLast() }
        return String(t)
    }

    /// Whether a detection scoring `score` gets a mask (after the class filter).
    @inline(__always) func wantsMask(score: Float) -> Bool {
        masks && (maskThresh.map { score >= $0 } ?? true)
    }

    /// Applies the options to the box head's output (boxes flat x1,y1,x2,y2; best first):
    /// removes the detections of classes not wanted, and returns which of the rest get masks.
    public func apply(to det: inout (boxes: [Float], scores: [Float], labels: [Int])) -> MaskSelection {
        if let keep = classesOnly {
            var boxes: [Float] = [], scores: [Float] = [], labels: [Int] = []
            for i in det.labels.indices where keep.contains(det.labels[i]) {
                boxes += det.boxes[(4 * i)..<(4 * i + 4)]
                scores.append(det.scores[i]); labels.append(det.labels[i])
            }
            det = (boxes, scores, labels)
        }
        var slot = [Int?](repeating: nil, count: det.labels.count)
        var boxes: [Float] = [], labels: [Int] = []
        for i in det.labels.indices where wantsMask(score: det.scores[i]) {
            slot[i] = labels.count
            boxes += det.boxes[(4 * i)..<(4 * i + 4)]
            labels.append(det.labels[i])
        }
        return MaskSelection(slot: slot, boxes: boxes, labels: labels)
    }
}

/// Which detections get masks: the input of the mask head and where its maps go.
public struct MaskSelection {
    /// Per detection (after the class filter): its row in the mask head's output, or nil.
    public let slot: [Int?]
    /// Boxes (flat x1,y1,x2,y2) and labels of the detections that get masks, in row order.
    public let boxes: [Float]
    public let labels: [Int]

    public var count: Int { labels.count }

    /// The rows of `flat` (4 values per detection) for the detections that get masks.
    public func pick(_ flat: [Float]) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(4 * count)
        for (i, s) in slot.enumerated() where s != nil { out += flat[(4 * i)..<(4 * i + 4)] }
        return out
    }
}
