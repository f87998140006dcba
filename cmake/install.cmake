# `cmake --install`: the public headers, the static libraries, a CMake package
# (find_package(streamingllm) -> streamingllm::streamingllm) and a pkg-config file.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/streamingllm
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS streamingllm ${SLLM_COMPONENTS}
        EXPORT streamingllmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT streamingllmTargets
        NAMESPACE streamingllm::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/streamingllm)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/streamingllmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/streamingllmConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/streamingllm)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/streamingllmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/streamingllmConfig.cmake
              ${PROJECT_BINARY_DIR}/streamingllmConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/streamingllm)

# pkg-config: the static libraries in link order (dependents first), then their dependencies.
set(SLLM_PC_LIBS "")
foreach(lib api tools runtime cache model chat sampling tokenizer gguf kernels util)
  string(APPEND SLLM_PC_LIBS " -lsllm_${lib}")
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/streamingllm.pc.in
               ${PROJECT_BINARY_DIR}/streamingllm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/streamingllm.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
