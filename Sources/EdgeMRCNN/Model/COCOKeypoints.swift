// The COCO person keypoints (torchvision's _COCO_PERSON_KEYPOINT_NAMES, the order of a
// keypointrcnn model's 17 heatmaps) and the skeleton of COCO's person_keypoints annotations
// (its "skeleton" list, there 1-based, here 0-based indices into `names`).

public enum COCOKeypoints {
    public static let names = [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ]

    /// COCO's 19 limbs, 0-based: ankle-knee-hip chains, hips, shoulders-hips, arms, face.
    public static let skeleton: [(Int, Int)] = [
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ]

    /// pycocotools' per-keypoint OKS sigmas (Params.kpt_oks_sigmas × 10), in `names` order.
    public static let oksSigmasTimes10: [Double] = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
                                                    0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
}
