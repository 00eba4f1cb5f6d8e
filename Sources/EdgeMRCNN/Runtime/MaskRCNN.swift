// The float Mask R-CNN R50-FPN model: weights + the pipeline stages. OWNER: pipeline helper
// (replace the body; keep the signatures).

public final class MaskRCNN {
    public let config: ModelConfig

    /// Binds the weights of `store` (canonical names from ModelSpec). `source` names the file in
    /// error messages. Throws on missing or mis-shaped tensors.
    public init(store: TensorStore, config: ModelConfig, source: String) throws {
        self.config = config
        throw EdgeError(file: source, "the pipeline is not built yet")
    }

    /// Runs the whole model on one image. Detections are in original image coordinates, sorted
    /// by descending score, at most 100, with masks pasted and thresholded at 0.5.
    /// scoreThresh: torchvision's box_score_thresh (0.05).
    public func detect(_ image: RGBImage, scoreThresh: Float = 0.05) throws -> [Detection] {
        throw EdgeError("the pipeline is not built yet")
    }
}
