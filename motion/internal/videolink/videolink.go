// Package videolink links OpenCV's video module into the binaries that import it: only
// motion's tests, whose BenchmarkBackgroundModels compares MOG2 (a video-module class)
// with the production background model. townwatch itself calls into OpenCV's core and
// imgproc only, and the Makefile links just those (OPENCV_LIBS): the video module would
// map dnn, calib3d, features2d, flann and protobuf into every townwatch process for
// nothing. ld wants every library that resolves a symbol named on its command line, so
// the modules the video module needs are listed too.
package videolink

// #cgo LDFLAGS: -lopencv_video -lopencv_dnn -lopencv_calib3d -lopencv_features2d -lopencv_flann
import "C"
