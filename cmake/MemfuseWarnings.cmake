# memfuse_set_warnings(target): the warning set every first-party target uses.
function(memfuse_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                         -Woverloaded-virtual -Wimplicit-fallthrough
                         # Options structs are filled with designated initializers; g++ 12
                         # warns about every member left to its default.
                         -Wno-missing-field-initializers)
  if(MEMFUSE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
