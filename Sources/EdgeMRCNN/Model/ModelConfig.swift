// What a model file says about the model besides its tensors: classes, transform sizes,
// normalisation. Stored as safetensors `__metadata__` (string -> string).

public struct ModelConfig: Equatable {
    public static let formatName = "edge-mrcnn"
    public static let formatVersion = 1

    public var numClasses: Int
    /// One name per class index, index 0 being the background.
    public var classNames: [String]
    public var minSize: Int
    public var maxSize: Int
    public var imageMean: [Float]
    public var imageStd: [Float]
    /// The torchvision architecture (metadata `arch`); files without it are maskrcnn v1.
    public var architecture: Architecture

    public init(numClasses: Int, classNames: [String]? = nil, minSize: Int = 800, maxSize: Int = 1333,
                imageMean: [Float] = [0.485, 0.456, 0.406], imageStd: [Float] = [0.229, 0.224, 0.225],
                architecture: Architecture = .maskrcnnV1) {
        self.numClasses = numClasses
        self.architecture = architecture
        if let names = classNames {
            self.classNames = names
        } else if architecture.hasKeypoints && numClasses == 2 {
            self.classNames = ["__background__", "person"]
        } else if numClasses == ModelConfig.cocoCategoryNames.count {
            self.classNames = ModelConfig.cocoCategoryNames
        } else {
            self.classNames = ["__background__"] + (1..<max(numClasses, 1)).map { "class\($0)" }
        }
        self.minSize = minSize
        self.maxSize = maxSize
        self.imageMean = imageMean
        self.imageStd = imageStd
    }

    /// Class names for `--classes a,b,c`: either one per class, or one per foreground class (then
    /// `__background__` is put first).
    public static func classNames(fromList list: String, numClasses: Int) throws -> [String] {
        let names = list.split(separator: ",", omittingEmptySubsequences: false).map { String($0) }
        if names.count == numClasses { return names }
        if names.count == numClasses - 1 { return ["__background__"] + names }
        throw EdgeError("--classes lists \(names.count) names but the model has \(numClasses) classes "
            + "(\(numClasses - 1) without the background)")
    }

    /// The 91 COCO category names as torchvision names them (index = COCO category id).
    public static let cocoCategoryNames: [String] = [
        "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
        "truck", "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter",
        "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
        "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase",
        "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
        "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
        "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
        "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A",
        "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote",
        "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
        "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
    ]
}
