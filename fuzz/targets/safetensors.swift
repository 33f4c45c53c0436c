// libFuzzer target: a checkpoint file from anywhere (--resume, --init, inspect, generate,
// and the run directory `--resume auto` scans). The parser must answer every input with a
// file or a SafeTensorsError; what it accepts must also pass the checkpoint-level readers.
import Foundation
import SafeTensors
import SpadeTrain

/// `--resume auto` judges files in the run directory by CheckpointDirectory.isComplete, which reads
/// the header itself: the same bytes go through it from a file.
private let scratch = FileManager.default.temporaryDirectory.path + "/fuzz-safetensors-\(getpid()).safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    FileManager.default.createFile(atPath: scratch, contents: Data(bytes))
    _ = CheckpointDirectory.isComplete(path: scratch)
    guard let file = try? SafeTensorsFile.parse(bytes, path: "fuzz") else { return 0 }
    for name in file.names {
        let t = file[name]!
        precondition(t.bytes.count == t.count * t.dtype.byteSize, "\(name): bytes do not match the shape")
        _ = t.floats
        _ = t.int64s
    }
    // A spade-dist checkpoint's metadata: progress and the stored config.
    if (try? Checkpoint.progress(file, path: "fuzz")) != nil, let yaml = file.metadata["config"] {
        _ = try? TrainConfig.parse(yaml: yaml, source: "fuzz:config")
    }
    // What is parsed serializes back to a file that parses to the same tensors.
    let again = try! SafeTensorsFile.parse(file.serialized(), path: "fuzz:serialized")
    precondition(again.tensors == file.tensors && again.metadata == file.metadata, "serialize/parse round trip differs")
    return 0
}
