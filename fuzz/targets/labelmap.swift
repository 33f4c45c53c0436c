// libFuzzer target: label and instance maps through the training data path. The input's first
// byte picks label_nc, its second the encoding options; the rest is written as the label map
// and the instance map of a one-sample custom dataset (odd bit depths, palettes, 16-bit ids,
// any size). The pre-scan must report it or pass it; a passed sample must load into a batch.
import Foundation
import SpadeData

private let root = FileManager.default.temporaryDirectory.path + "/fuzz-labelmap-\(getpid())"
private let dirs = ["train_label", "train_img", "train_inst"].map { root + "/" + $0 }
private let setUp: Void = {
    for d in dirs { try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLabelMap(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 2 else { return 0 }
    _ = setUp
    let bytes = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))
    let flags = data[1]
    var o = DatasetOptions()
    o.datasetMode = "custom"
    o.dataroot = root
    o.labelNC = 1 + Int(data[0]) % 255
    o.containDontcareLabel = flags & 1 != 0
    o.noInstance = flags & 2 != 0
    if flags & 4 != 0 {
        // Colour-coded labels: class c is the colour (c, c, c), as a gray label map decodes.
        o.labelEncoding = "rgb"
        o.labelColors = (0..<o.labelNC).map { [$0, $0, $0] }
    }
    o.preprocessMode = ["resize_and_crop", "crop", "scale_width_and_crop", "fixed", "none"][Int(flags >> 3) % 5]
    o.cropSize = 32
    o.loadSize = 32
    o.noFlip = flags & 0x80 == 0
    // The photo: a gray PNG of the label map's size when it decodes (capped), else 8x8.
    let decoded = try? decodeImage(bytes, path: "fuzz")
    var (w, h) = (8, 8)
    if let d = decoded, d.width * d.height <= 1 << 20 { (w, h) = (d.width, d.height) }
    let photo = try! encodePNG(width: w, height: h, channels: 1, pixels: [UInt8](repeating: 128, count: w * h), level: 0)
    FileManager.default.createFile(atPath: dirs[0] + "/0.png", contents: Data(bytes))
    FileManager.default.createFile(atPath: dirs[1] + "/0.png", contents: Data(photo))
    FileManager.default.createFile(atPath: dirs[2] + "/0.png", contents: Data(bytes))
    guard prescan(o).isEmpty else { return 0 }
    let dataset = try! Dataset(options: o)
    // What the pre-scan passed must load: a failure here would be a crash or exit 1 mid-run.
    let batch = try! dataset.makeBatch(indices: [0], epoch: 0)
    precondition(batch.semantics.count == o.semanticNC * o.outputHeight * o.outputWidth)
    return 0
}
