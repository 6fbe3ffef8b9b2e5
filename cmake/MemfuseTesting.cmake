# memfuse_add_gtest(NAME name SOURCES ... LIBS ... LABELS ... [OWN_MAIN])
#
# One GoogleTest executable, its tests discovered into ctest with the given
# labels. Labels used in this project: unit, property, sim, integration, slow,
# and tsan (the real-thread tests the tsan preset runs).
function(memfuse_add_gtest)
  cmake_parse_arguments(ARG "OWN_MAIN" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock)
  if(NOT ARG_OWN_MAIN)
    target_link_libraries(${ARG_NAME} PRIVATE GTest::gtest_main)
  endif()
  memfuse_set_warnings(${ARG_NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  gtest_discover_tests(${ARG_NAME}
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  # Labels are set by a ctest include file that runs after discovery's own:
  # gtest_discover_tests(PROPERTIES LABELS a;b) splits a list of labels apart.
  set(label_script ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_labels.cmake)
  file(WRITE ${label_script}
       "if(${ARG_NAME}_TESTS)\n"
       "  set_tests_properties(\${${ARG_NAME}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\n"
       "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${label_script})
  # Executables with real-thread tests are what the tsan preset builds (the
  # aggregate target tsan_tests, made in the top-level CMakeLists.txt).
  if("tsan" IN_LIST ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY MEMFUSE_TSAN_TARGETS ${ARG_NAME})
  endif()
endfunction()
